"""Job identity, locks and markers for resumable sweeps.

A job's identity is its whole composed configuration (unresolved, so data paths do not count) minus the keys that
cannot change its results (`NON_IDENTITY`). `job.json` in the job dir records it when the job starts; a re-run skips
or resumes a job only when the recorded identity is the same, and refuses the dir otherwise (never reuses it
silently). Sweep job dirs are named `<model>/<cohort>/fold<k>` plus the swept keys' values (`job_tag`), so
`-m seed=0,1` or `model.task.lr=1e-3,1e-4` get one dir per value. A live job holds `<dir>/.lock` (`JobLock`).

Every run (one model × cohort × fold job) ends by writing exactly one marker into its Hydra output dir:

- ``DONE``   (empty) — written LAST, after ``metrics.json``/``predictions.csv``; a re-run sweep skips the job.
- ``FAILED`` (text)  — the exception and its traceback; a re-run sweep runs the job again.

A job dir with ``.hydra/`` (Hydra wrote its config) but neither marker is *incomplete* (killed, still running).

A job of a multirun that did not complete also appends one line to ``<sweep dir>/outcomes.jsonl`` (emptied when the
multirun starts): ``failed`` (it ran and raised: ``FAILED`` is in its dir) or ``refused`` (it never ran: its dir
holds another configuration's job or a live job, or the config is bad; the dir is left untouched, so its markers
still describe the earlier job). The sweep summary counts refusals apart from completions and the multirun exits
non-zero.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> job_is_complete(d)
    False
    >>> _ = (d / "metrics.json").write_text('{"test/cindex": 0.7}')
    >>> mark_done(d)
    >>> job_is_complete(d), read_job_metric(d, "test/cindex")
    (True, 0.7)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from survlab.utils.files import atomic_write

DONE = "DONE"
FAILED = "FAILED"
METRICS = "metrics.json"
RECORD = "job.json"
LOCK = ".lock"
SWEEP_KEYS = "sweep_keys.json"
OUTCOMES = "outcomes.jsonl"

#: config keys (dotted) that cannot change a job's results: left out of its identity and of its dir name
NON_IDENTITY = (
    "paths",
    "hydra",
    "skip_completed",
    "ckpt_path",
    "resume",
    "logger",
    "tags",
    "optimized_metric",
    "export_attention",
    "export_attention_h5",
    "attention_top_k",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "callbacks.rich_progress_bar",
    "callbacks.lr_monitor",
    "pipeline.rerun",
    "data.time_unit",
    "callbacks.epoch_log",
    # DataLoader workers / pinning never change a batch (draws are seeded by seed, epoch, patient), and `auto`
    # resolves differently per machine
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
)
#: modules moved when the folders became the layers, new -> old dotted path. A `_target_` in a moved module is
#: identified by its old spelling, so jobs recorded before the move keep their identity (finished sweeps do not
#: re-run); survlab.config.check also accepts the old spelling in a user's config, with a warning.
MOVED_MODULES = {
    "survlab.runner.estimators.coxnet": "survlab.runner.coxnet",
    "survlab.runner.build": "survlab.runner.setup",
    "survlab.data.sources.synthetic": "survlab.data.synthetic",
    "survlab.data.sources.synthetic_pathgen": "survlab.data.synthetic_pathgen",
    "survlab.data.sources.synthetic_petct": "survlab.data.synthetic_petct",
}
#: keys already in the job dir path <model>/<cohort>/fold<k>
LOCATION_KEYS = ("model", "data", "fold")
_TAG_MAX = 80


class JobError(RuntimeError):
    """A job dir cannot be used: another configuration's results, or another live job, are in it."""


__all__ = [
    "JobError",
    "JobLock",
    "identity_of",
    "check_identity",
    "write_record",
    "job_tag",
    "override_key",
    "record_sweep_keys",
    "DONE",
    "FAILED",
    "METRICS",
    "job_is_complete",
    "job_status",
    "clear_markers",
    "mark_done",
    "mark_failed",
    "read_job_metric",
    "first_error_line",
    "error_line",
    "start_outcomes",
    "record_outcome",
    "read_outcomes",
]


def job_is_complete(out_dir: str | os.PathLike) -> bool:
    """True when the job in ``out_dir`` finished: ``DONE`` exists and ``metrics.json`` is readable."""
    out = Path(out_dir)
    if not (out / DONE).is_file():
        return False
    try:
        json.loads((out / METRICS).read_text())
    except (OSError, ValueError):
        return False  # DONE without readable metrics: treat as not complete, run it again
    return True


def job_status(out_dir: str | os.PathLike) -> str:
    """``"done"``, ``"failed"`` or ``"incomplete"`` (started but no marker)."""
    if job_is_complete(out_dir):
        return "done"
    if (Path(out_dir) / FAILED).is_file():
        return "failed"
    return "incomplete"


def clear_markers(out_dir: str | os.PathLike) -> None:
    """Remove ``DONE``/``FAILED`` before a (re-)run starts, so a job killed mid-way reads as incomplete."""
    out = Path(out_dir)
    for name in (DONE, FAILED):
        (out / name).unlink(missing_ok=True)


def mark_done(out_dir: str | os.PathLike) -> None:
    """Write the empty ``DONE`` marker (call it last) and remove a ``FAILED`` marker left by an earlier attempt."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / FAILED).unlink(missing_ok=True)
    atomic_write(out / DONE, "")


def error_line(exc: BaseException) -> str:
    """The one line that says what went wrong. survlab's own errors (bad input, bad config, a job dir in use) are
    their message; other exceptions get their type in front. An error raised in a DataLoader worker arrives wrapped
    ("Caught ValueError in DataLoader worker process 0. Original Traceback ..."): its last line is the original."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0] and len(lines) > 1:
        return re.sub(r"^(ValueError|FileNotFoundError|KeyError): ", "", lines[-1])
    own = (ValueError, FileNotFoundError, KeyError, JobError, OSError)
    first = lines[0] if lines else ""
    if isinstance(exc, own) and first:
        if isinstance(exc, OSError) and getattr(exc, "filename", None) and str(exc.filename) not in first:
            first = f"{first}: {exc.filename}"
        return first
    return f"{type(exc).__name__}: {first}".strip().rstrip(":")


def mark_failed(out_dir: str | os.PathLike, exc: BaseException) -> None:
    """Write ``FAILED``: the one-line error (`error_line`), then the traceback; remove a stale ``DONE``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / DONE).unlink(missing_ok=True)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    atomic_write(out / FAILED, f"{error_line(exc)}\n\n{tb}")


def read_job_metric(out_dir: str | os.PathLike, key: str) -> float:
    """``metrics.json[key]`` as float (NaN when missing, null or not a number)."""
    try:
        value = json.loads((Path(out_dir) / METRICS).read_text()).get(key)
        return float(value) if value is not None else math.nan
    except (OSError, ValueError, TypeError):
        return math.nan


def first_error_line(out_dir: str | os.PathLike) -> str:
    """First non-empty line of ``FAILED`` (``""`` when there is none)."""
    try:
        for line in (Path(out_dir) / FAILED).read_text().splitlines():
            if line.strip():
                return line.strip()
    except OSError:
        pass
    return ""


def start_outcomes(sweep_dir: str | os.PathLike) -> None:
    """Empty `<sweep_dir>/outcomes.jsonl` at the start of a multirun (it lists this multirun's jobs only)."""
    out = Path(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / OUTCOMES, "")


def record_outcome(sweep_dir: str | os.PathLike, job_dir: str | os.PathLike, outcome: str, line: str) -> None:
    """Append {"dir", "outcome" (failed | refused), "error"} for a job of this multirun that did not complete (one
    short O_APPEND write, so jobs in parallel processes do not interleave)."""
    record = json.dumps({"dir": str(Path(job_dir).resolve()), "outcome": outcome, "error": line}) + "\n"
    fd = os.open(Path(sweep_dir) / OUTCOMES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, record.encode())
    finally:
        os.close(fd)


def read_outcomes(sweep_dir: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The latest multirun's failed / refused jobs: resolved job dir -> {"outcome", "error"} ({} when none)."""
    try:
        text = (Path(sweep_dir) / OUTCOMES).read_text()
    except OSError:
        return {}
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash: skip it
        out[str(rec["dir"])] = {"outcome": str(rec["outcome"]), "error": str(rec.get("error", ""))}
    return out


# --------------------------------------------------------------------------------------------- identity
def _drop(tree: dict[str, Any], dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if head in tree:
        if not rest:
            del tree[head]
        elif isinstance(tree[head], dict):
            _drop(tree[head], rest)


def identity_of(cfg: Any) -> dict[str, Any]:
    """The job's identity: its composed config as plain containers, interpolations NOT resolved (so `data.root:
    ${paths.data_dir}/...` is the same on every machine), without `NON_IDENTITY` keys."""
    from omegaconf import OmegaConf

    tree: Any = (
        OmegaConf.to_container(cfg, resolve=False)
        if not isinstance(cfg, dict)
        else json.loads(json.dumps(cfg))
    )
    for key in NON_IDENTITY:
        _drop(tree, key)
    tree = _old_targets(_without_default_task_target(tree))
    splits = (tree.get("data") or {}).get("splits") if isinstance(tree.get("data"), dict) else None
    if isinstance(splits, dict) and splits.get("repeat", None) in (0, "0"):
        # repeat 0 is the original assignment: jobs from before splits.repeat keep their identity
        del splits["repeat"]
    if isinstance(splits, dict) and "group" in splits and splits["group"] in (None, "null", "None"):
        # no group = the random folds survlab always drew: jobs from before splits.group keep their identity
        del splits["group"]
    _without_default_missing(tree)
    conformal = tree.get("conformal")
    if isinstance(conformal, dict) and not conformal.get("alphas"):
        # conformal sets off (the default): jobs from before the `conformal` key keep their identity
        del tree["conformal"]
    slide_labels = tree["data"].get("slide_labels") if isinstance(tree.get("data"), dict) else None
    for spec in slide_labels.values() if isinstance(slide_labels, dict) else ():
        if isinstance(
            spec, dict
        ):  # a slide / patient label rule only refuses contradicting input, never moves a result
            spec.pop("patient", None)
    return tree


#: `model.task._target_` of the survival model configs: the task their flat keys always built, so it is left out of
#: the identity (jobs from before the task configs had a `_target_` keep theirs)
DEFAULT_TASK_TARGET = "survlab.tasks.survival.SurvivalTask"


#: keys of a `_target_` node (a network / task config) added after jobs were recorded, with the value that does what
#: every job did before the key existed: at that value the key is left out of the identity, so those jobs keep theirs
NEUTRAL_TARGET_KEYS: dict[str, float] = {
    "modality_dropout": 0.0,  # a network's modality dropout off (#23)
    "ce_weight": 0.0,  # the segmentor's soft Dice loss without a cross-entropy term (#21)
}


def _without_default_missing(tree: Any) -> None:
    """Drop `missing: error` from every data config in `tree` (in place): a node with `allow_missing` beside it, the
    job's `data` as well as one nested in it (e.g. a segmentation cohort's `outcome_splits`). missing=error is what
    every job did before data.missing existed, so those jobs keep their identity. Likewise every NEUTRAL_TARGET_KEYS
    key at its neutral value in a `_target_` node."""
    if isinstance(tree, list):
        for v in tree:
            _without_default_missing(v)
    elif isinstance(tree, dict):
        if "allow_missing" in tree and tree.get("missing", None) == "error":
            del tree["missing"]
        if "_target_" in tree:
            for key, neutral in NEUTRAL_TARGET_KEYS.items():
                value = tree.get(key, None)
                if (
                    isinstance(value, (int, float, str))
                    and not isinstance(value, bool)
                    and _is_number(value, neutral)
                ):
                    del tree[key]
        for v in tree.values():
            _without_default_missing(v)


def _is_number(value: float | str, neutral: float) -> bool:
    """Whether `value` (a YAML number or its string) equals `neutral`."""
    try:
        return float(value) == neutral
    except ValueError:
        return False


def _without_default_task_target(tree: Any) -> Any:
    """`tree` without `task._target_` of every model config (a node with `net` and `task`) whose task target is
    `DEFAULT_TASK_TARGET`, wherever it sits (`model`, `pipeline.<stage>.model`)."""
    if isinstance(tree, list):
        return [_without_default_task_target(v) for v in tree]
    if not isinstance(tree, dict):
        return tree
    out = {k: _without_default_task_target(v) for k, v in tree.items()}
    task = out.get("task")
    if "net" in out and isinstance(task, dict) and task.get("_target_") == DEFAULT_TASK_TARGET:
        out["task"] = {k: v for k, v in task.items() if k != "_target_"}
    return out


def _old_targets(tree: Any) -> Any:
    """`tree` with every `_target_` in a moved module spelled with its old module path (MOVED_MODULES)."""
    if isinstance(tree, dict):
        return {k: _old_spelling(v) if k == "_target_" else _old_targets(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_old_targets(v) for v in tree]
    return tree


def _old_spelling(target: Any) -> Any:
    module, _, name = str(target).rpartition(".")
    return f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else target


def _digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def identity_diff(old: dict[str, Any], new: dict[str, Any], k: int = 3) -> str:
    """'key: old -> new; ...' for up to k differing keys (dotted)."""
    a, b = _flat(old), _flat(new)
    keys = sorted(key for key in a.keys() | b.keys() if a.get(key, "<unset>") != b.get(key, "<unset>"))
    shown = "; ".join(f"{key}: {a.get(key, '<unset>')} -> {b.get(key, '<unset>')}" for key in keys[:k])
    return shown + (f" (+{len(keys) - k} more)" if len(keys) > k else "")


def check_identity(out_dir: str | os.PathLike, identity: dict[str, Any]) -> bool:
    """True when `out_dir/job.json` records this identity, False when the dir holds no job yet.

    Raises JobError when the dir holds another configuration's job, or results without a record (older survlab)."""
    out = Path(out_dir)
    try:
        record = json.loads((out / RECORD).read_text())
    except FileNotFoundError:
        leftovers = [n for n in (DONE, METRICS, "checkpoints") if (out / n).exists()]
        if leftovers:
            raise JobError(
                f"{out} holds results ({', '.join(leftovers)}) without a survlab job record ({RECORD}), so they "
                f"cannot be matched to this configuration; use a new hydra.sweep.dir / hydra.run.dir"
            ) from None
        return False
    except ValueError as err:
        raise JobError(
            f"{out / RECORD} is unreadable ({err}); use a new hydra.sweep.dir / hydra.run.dir"
        ) from None
    if record.get("identity_sha256") == _digest(identity):
        return True
    recorded = record.get("identity")
    if isinstance(
        recorded, dict
    ):  # a record written before a key joined NON_IDENTITY (e.g. data.num_workers)
        for key in NON_IDENTITY:
            _drop(recorded, key)
        if _digest(recorded) == _digest(identity):
            return True
    raise JobError(
        f"{out} holds a job with another configuration ({identity_diff(record.get('identity', {}), identity)}); "
        f"re-run with the same configuration to resume it, or use a new hydra.sweep.dir / hydra.run.dir"
    )


def write_record(out_dir: str | os.PathLike, identity: dict[str, Any], overrides: Sequence[str]) -> None:
    """Record the job's identity and command-line overrides in `out_dir/job.json`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"identity_sha256": _digest(identity), "overrides": list(overrides), "identity": identity}
    atomic_write(out / RECORD, json.dumps(record, indent=1, sort_keys=True, default=str))


def read_record(out_dir: str | os.PathLike) -> dict[str, Any]:
    """`job.json` of a job dir ({} when absent or unreadable)."""
    try:
        return json.loads((Path(out_dir) / RECORD).read_text())
    except (OSError, ValueError):
        return {}


class JobLock:
    """Exclusive lock on `<out_dir>/.lock` for the life of a job (released by the OS if the process dies).

    A second job started on the same dir raises JobError instead of writing into the first one's outputs."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.path = Path(out_dir) / LOCK
        self._fd: int | None = None

    def __enter__(self) -> JobLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JobError(
                f"{self.path.parent} is in use by another running job ({holder}); wait for it or use another "
                f"hydra.run.dir / hydra.sweep.dir"
            ) from None
        self._fd = fd
        return self

    def claim(self) -> None:
        """Write this process as the holder into `.lock` (call it once the job is known to run here: a refused job
        leaves the dir's `.lock` as it was)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


# --------------------------------------------------------------------------------------------- dir names
def override_key(override: str) -> str:
    """'+model.task.lr=1e-3' -> 'model.task.lr'."""
    return override.split("=", 1)[0].lstrip("+~")


def is_non_identity(key: str) -> bool:
    """True for keys (dotted, or config groups like `logger`) that cannot change a job's results."""
    return any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in NON_IDENTITY)


def record_sweep_keys(
    sweep_dir: str | os.PathLike, overrides: Iterable[str], params: Iterable[str] = ()
) -> list[str]:
    """Write `<sweep_dir>/sweep_keys.json`: the keys a multirun sweeps (command-line sweeps such as `seed=0,1`,
    plus the sweeper's `params`), read by `job_tag` to name each job dir."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    keys = sorted({o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()} | set(params))
    out = Path(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / SWEEP_KEYS, json.dumps({"swept": keys}))
    return keys


def job_tag(sweep_dir: str, overrides: Sequence[str]) -> str:
    """The part of a sweep job's dir after `<model>/<cohort>/fold<k>`: '' or '/key=value,...' over the swept keys
    (other than model, data, fold) of this job's overrides; all of its result-changing overrides when the sweep's
    keys were not recorded. Long tags end in a hash, so distinct override sets never share a dir."""
    try:
        swept = set(json.loads((Path(sweep_dir) / SWEEP_KEYS).read_text())["swept"])
    except (OSError, ValueError, KeyError):
        swept = None
    items = []
    for o in overrides:
        key = override_key(str(o))
        if key in LOCATION_KEYS or is_non_identity(key) or (swept is not None and key not in swept):
            continue
        items.append(re.sub(r"[^\w.,=+\-\[\]]", "_", str(o).lstrip("+~")))
    if not items:
        return ""
    tag = ",".join(sorted(items))
    if len(tag) > _TAG_MAX:
        tag = f"{tag[: _TAG_MAX - 13]}..{hashlib.sha256(tag.encode()).hexdigest()[:10]}"
    return "/" + tag


#: in-place steps the job applies to its config before `identity_of` (survlab.run registers resolve_auto), applied
#: by `may_write_hydra_record` too so that both see the same identity
IDENTITY_PREPARE: list[Callable[[Any], None]] = []


def _live_lock(out: Path) -> bool:
    """True when `out/.lock` is held by a running job (this call takes and releases nothing else)."""
    import fcntl

    try:
        fd = os.open(out / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def may_write_hydra_record(root: Any) -> bool:
    """Whether Hydra may write its record (`.hydra/`, the job log) into the job dir of the composed config `root`
    (task keys + `hydra`, as Hydra's run_job holds it just before it writes): the dir holds no job yet, or a job of
    the same identity (a resume / skip) that no other process is running. False when survlab will refuse the job,
    so a refused job leaves every file of an existing run as it was (Hydra writes `.hydra/` BEFORE any callback or
    the task function can check, hydra/core/utils.py run_job)."""
    from omegaconf import OmegaConf

    out = Path(str(OmegaConf.select(root, "hydra.runtime.output_dir")))
    if any(
        os.environ.get(v, "0").isdigit() and int(os.environ.get(v, "0")) > 0 for v in ("RANK", "LOCAL_RANK")
    ):
        return True  # a DDP child rank relaunched into its rank-0 job's (locked) dir: its own log file there
    if not (out / RECORD).exists() and not any((out / n).exists() for n in (DONE, METRICS, "checkpoints")):
        return True  # a new dir (or one holding only Hydra's record): nothing to protect
    if _live_lock(out):
        return False
    task = cast("dict[str, Any]", OmegaConf.to_container(root, resolve=False))  # root is a DictConfig
    task.pop("hydra", None)
    task_cfg = OmegaConf.create(task)
    try:
        for prepare in IDENTITY_PREPARE:  # what the job does to its config before it computes its identity
            prepare(task_cfg)
        check_identity(out, identity_of(task_cfg))
    except Exception:  # noqa: BLE001 - another configuration, or one the job will refuse as invalid
        return False
    return True


def _hydra_subdir(*, _root_: Any) -> str | None:
    """`hydra.output_subdir`: `.hydra`, or None (Hydra writes no record) for a job survlab will refuse."""
    try:
        return ".hydra" if may_write_hydra_record(_root_) else None
    except Exception:  # noqa: BLE001 - a config composed outside a job (no runtime.output_dir): Hydra's default
        return ".hydra"


def _job_log(*, _root_: Any) -> str:
    """The job log file `<job dir>/<job name>.log`, or os.devnull for a job survlab will refuse (its lines still reach
    the console) — a refused job appends nothing to an existing run's log."""
    from omegaconf import OmegaConf

    path = f"{OmegaConf.select(_root_, 'hydra.runtime.output_dir')}/{OmegaConf.select(_root_, 'hydra.job.name')}.log"
    try:
        return path if may_write_hydra_record(_root_) else os.devnull
    except Exception:  # noqa: BLE001 - as _hydra_subdir
        return path


def register_resolvers() -> None:
    """`${survlab.job_tag:<sweep dir>,<overrides>}`, `${survlab.pid:}`, `${survlab.hydra_subdir:}` and
    `${survlab.job_log:}` for conf/hydra/default.yaml, `${survlab.cwd:}` for conf/paths/default.yaml."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("survlab.hydra_subdir"):
        OmegaConf.register_new_resolver("survlab.hydra_subdir", _hydra_subdir)
    if not OmegaConf.has_resolver("survlab.job_log"):
        OmegaConf.register_new_resolver("survlab.job_log", _job_log)

    if not OmegaConf.has_resolver("survlab.job_tag"):
        OmegaConf.register_new_resolver("survlab.job_tag", lambda d, o: job_tag(str(d), list(o or [])))
    if not OmegaConf.has_resolver("survlab.pid"):
        OmegaConf.register_new_resolver("survlab.pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("survlab.cwd"):
        OmegaConf.register_new_resolver("survlab.cwd", launch_cwd)


def launch_cwd() -> str:
    """The directory survlab was started from: Hydra's `runtime.cwd` inside a job, the process's working directory
    before one (a multirun resolves `hydra.sweep.dir` before any job, when `${hydra:runtime.cwd}` cannot resolve yet;
    `hydra.job.chdir` is false, so both are the same folder)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    if HydraConfig.initialized():
        # HydraConfig.get() is typed as the HydraConf dataclass but returns its DictConfig
        cwd = OmegaConf.select(cast("DictConfig", HydraConfig.get()), "runtime.cwd", default=None)
        if cwd:
            return str(cwd)
    return os.getcwd()


register_resolvers()
