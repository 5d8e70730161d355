"""Speed benchmark: survlab's training loop against the usual loop of the papers' scripts, and the bandwidth floor.

    survlab bench                                 # TCGA scale: 1,000 patients x ~10k patches x 1,024-d fp16
    survlab bench --patients 200 --patches 2000 --models abmil --out experiments/speed/cpu

What it does, all in one process on the same files:
1. Writes (once, cached) a synthetic multi-scale cohort in the real CLAM layout: `pt_files/` fp16 bags [N, D], 1-3
   slides per patient, genomics, a 5-fold patient-level split.
2. For each model (ABMIL, GGMF, CrossFusion) trains `--epochs` epochs with
   - the USUAL loop, written plainly below (`usual_loop`): one patient per step, every slide's `.pt` `torch.load`ed
     at every step, fp32, gradient accumulation 32, full bags — what CLAM / MCAT / GGMF / CrossFusion do;
   - survlab's loop (Lightning Trainer, the configured datamodule and task, composed from the same Hydra configs a
     user runs) in each requested variant (`--variants`: name=override,override...; e.g. packed store, bucketing).
   Per run: training and evaluation patients/s, the share of step time spent waiting for data, peak host memory
   (RSS, sampled) and device memory, test C-index after the fixed number of epochs (last weights, no selection).
3. The floor: bytes of features an epoch must read / measured memory bandwidth (host copy; device copy on CUDA).
4. Scaling: survlab's epoch time against cohort size (`--sizes`) and patches per patient (`--patch-caps`).
Writes `<out>/bench.json`, `<out>/bench.md` (one table) and `<out>/scaling.png`.
Timing lives here, never in tests; `tests/e2e/test_bench.py` only runs this end to end on a tiny cohort.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np  # torch is imported inside the functions that use it: `survlab bench --help` starts fast

from survlab.config.search_path import PACKAGE_CONF_DIR as CONF_DIR  # noqa: E402
from survlab.utils.malloc import reuse_freed_buffers

MODELS = ("abmil", "ggmf", "crossfusion")
EVAL_PASSES = (
    2  # evaluation patients/s = the fastest of this many test passes (same weights, same predictions)
)
DEFAULT_VARIANTS = {
    "survlab": [],
    "survlab+bucketing": ["data.bucketing=true"],
    "survlab+packed+bucketing": ["data.bucketing=true", "++data.wsi.packed=true"],
    # every bag held on the training device (GPU-resident; on a CPU run the host gathers instead of per-item copies)
    "survlab+resident+bucketing": ["data.bucketing=true", "++data.wsi.cache=device"],
}


# ------------------------------------------------------------------------------------------------ measurement
class PeakRSS:
    """Peak resident memory of this process while the context is open (sampled every 20 ms from /proc)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()

    @staticmethod
    def now() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        import torch

        self.peak = self.now()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.now())


def device_peak_gb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None


def host_bandwidth_gbs(n_bytes: int = 1 << 30, repeats: int = 3) -> float:
    """Memory bandwidth of a large host copy (read + write counted as 2 x bytes), best of `repeats`."""
    a = np.ones(n_bytes // 8, dtype=np.float64)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best / 1e9


def device_bandwidth_gbs(n_bytes: int = 1 << 30) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    a = torch.ones(n_bytes // 4, device="cuda")
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(5):
        b.copy_(a)
    torch.cuda.synchronize()
    return 2 * 5 * a.numel() * 4 / (time.perf_counter() - t) / 1e9


def _typical(epoch_s: list[float]) -> float:
    """Epoch time reported: the fastest epoch after the first (which pays one-off costs: RAM cache, page cache,
    allocator warm-up) — on a shared machine the minimum is the least disturbed measurement; all are in the JSON."""
    return min(epoch_s[1:] or epoch_s)


# ------------------------------------------------------------------------------------------------ configs
def compose(model: str, root: Path, spec: dict[str, Any], overrides: Sequence[str] = ()) -> Any:
    """The Hydra config a user gets for `model=<model> data=synthetic` at the TCGA recipes' data settings
    (conf/data/_tcga.yaml: batch 8, max_patches 4096, RAM cache auto up to 8 GB), on the benchmark cohort."""
    import torch
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    d = spec["feature_dim"]
    ov = [
        f"model={model}",
        "data=synthetic",
        f"data.root={root}",
        "logger=none",
        "trainer=gpu" if torch.cuda.is_available() else "trainer=cpu",
        "data.wsi.format=pt",
        f"data.wsi.feature_dim={d}",
        "data.batch_size=8",
        "data.eval_batch_size=8",
        "data.max_patches=4096",
        "++data.wsi.cache_max_gb=8",
        f"data.num_workers={_workers()}",
        f"data.pin_memory={torch.cuda.is_available()}",
    ]
    ov += [f"++data.synthetic.{k}={json.dumps(v)}" for k, v in spec.items()]
    if (
        model == "crossfusion"
    ):  # the same cohort, read at its three scales (conf/data/_tcga_multiscale.yaml caps)
        ov += [
            "++data.wsi.scales=[x5,x10,x20]",
            f"data.wsi.feature_dim={{x5: {d}, x10: {d}, x20: {d}}}",
            "++data.max_patches_per_scale={x5: 1024, x10: 2048, x20: 4096}",
            # its packed stores (<dir>/<encoder>/<scale>) must not sit inside the single-scale store's folder
            f"++data.wsi.packed_dir={root}-packed-multiscale",
        ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=[*ov, *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def _workers() -> int:
    """DataLoader workers: none on a 2-core machine (process overhead > parallel decode, experiments/throughput),
    else up to 4."""
    n = os.cpu_count() or 1
    return 0 if n <= 2 else min(4, n - 1)


def build(cfg: Any) -> tuple[Any, Any, Any]:
    """datamodule (set up), net, task — the one build path (survlab/runner/build.py) training takes, seeded as it is (cfg.seed): every
    loop and variant starts from the same initial weights, whatever ran before it in this process."""
    import lightning as L

    from survlab.config.check_task import resolve_auto
    from survlab.runner.build import build_datamodule, build_net, build_task

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    resolve_auto(cfg)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    net = build_net(cfg, dm.dims)
    task = build_task(cfg, net)
    task.fit_references(dm.fitted)
    return dm, net, task


class StepTimer:
    """Lightning callback: wall time of each training epoch and the time between batches (waiting for data)."""

    def __new__(cls) -> Any:
        import lightning as L
        import torch

        class _Timer(L.Callback):
            def __init__(self) -> None:
                self.epoch_s: list[float] = []
                self.wait_s = self.step_s = 0.0
                self.patients = 0

            def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
                self._t0 = self._last = time.perf_counter()

            def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
                now = time.perf_counter()
                self.wait_s += now - self._last
                self._start = now

            def on_train_batch_end(
                self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, i: int
            ) -> None:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self._last = time.perf_counter()
                self.step_s += self._last - self._start
                self.patients += len(batch)

            def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
                self.epoch_s.append(time.perf_counter() - self._t0)

        return _Timer()


def survlab_loop(model: str, root: Path, spec: dict[str, Any], epochs: int, overrides: Sequence[str]) -> dict:
    """Train `epochs` epochs with survlab's loop (no inner validation, no checkpoints: the usual loop has neither),
    then evaluate the test fold once with the last weights."""
    import gc

    import lightning as L

    gc.collect()  # the previous run's datamodule (and its RAM cache) must not count in this run's peak memory
    cfg = compose(model, root, spec, [*overrides, f"trainer.max_epochs={epochs}"])
    timer = StepTimer()
    with (
        PeakRSS() as rss
    ):  # from setup on: the header checks, a packed-store build and the RAM cache count too
        dm, net, task = build(cfg)
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator=cfg.trainer.get("accelerator", "auto"),
            devices=1,
            precision=cfg.trainer.get("precision", "32-true"),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=[timer],
            deterministic=False,
        )
        t = time.perf_counter()
        trainer.fit(task, datamodule=dm)
        train_s = time.perf_counter() - t
        eval_s = float("inf")
        for _ in range(
            EVAL_PASSES
        ):  # the fastest pass: one test pass of a few patients is ~0.1 s, noise-prone
            t = time.perf_counter()
            trainer.test(task, datamodule=dm, verbose=False)
            eval_s = min(eval_s, time.perf_counter() - t)
    n_test = len(dm.datasets["test"])
    n_train = timer.patients / len(timer.epoch_s)
    return {
        "train_patients_per_s": n_train / _typical(timer.epoch_s),
        "epoch_s": timer.epoch_s,
        "data_wait_share": timer.wait_s / max(timer.wait_s + timer.step_s, 1e-9),
        "eval_patients_per_s": n_test / eval_s,
        "test_cindex": float(task.test_metrics.get("cindex", float("nan"))),
        "peak_host_gb": rss.peak / 1e9,
        "peak_device_gb": device_peak_gb(),
        "train_s": train_s,
        "overrides": list(overrides),
    }


# ------------------------------------------------------------------------------------------------ the usual loop
def usual_loop(
    model: str,
    root: Path,
    spec: dict[str, Any],
    epochs: int,
    accumulation: int = 32,
    lr: float = 2e-4,
    overrides: Sequence[str] = (),
) -> dict:
    """The papers' loop, written plainly: one patient per step, `torch.load` of each slide's .pt at every step,
    fp32, full bags, loss / accumulation and an optimiser step every `accumulation` patients. Same network class,
    same patients, same files as `survlab_loop`."""
    import gc

    import torch

    from survlab.data.batch import Batch
    from survlab.metrics.survival import harrell_cindex
    from survlab.models.base import survival_from_hazard_logits
    from survlab.tasks.losses import nll_discrete_survival

    gc.collect()
    cfg = compose(model, root, spec, [*overrides, "++data.wsi.cache=false"])
    dm, net, _ = build(cfg)  # for the split, the genomics table and the network; the loop reads files itself
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    feat = root / "features" / "synthetic"
    scales = list(cfg.model.net.get("scales") or []) if "scales" in net.modalities else []

    def load(slides: list[str]) -> dict[str, torch.Tensor]:
        dirs = {s: feat / s / "pt_files" for s in scales} or {"wsi": feat / "pt_files"}
        return {
            k: torch.cat([torch.load(d / f"{s}.pt", weights_only=True).float() for s in slides])
            for k, d in dirs.items()
        }

    def batch_of(ds: Any, i: int) -> Batch:
        row, case = ds.rows.iloc[i], ds.case_ids[i]
        bags = load(list(row["slide_ids"]))
        b = Batch(
            case_ids=[case],
            index=torch.tensor([i]),
            time=torch.tensor([float(row["time"])]),
            event=torch.tensor([bool(row["event"])]),
            time_bin=torch.tensor([int(ds.time_bins[i])]),
        )
        if scales:
            b.scales = {k: v[None].to(device) for k, v in bags.items()}
            b.scale_masks = {
                k: torch.ones(1, v.shape[0], dtype=torch.bool, device=device) for k, v in bags.items()
            }
        else:
            b.wsi = bags["wsi"][None].to(device)
            b.wsi_mask = torch.ones(1, b.wsi.shape[1], dtype=torch.bool, device=device)
        if "genomics" in net.modalities:
            b.genomics = [torch.from_numpy(g)[None].to(device) for g in ds.sources.genomics[case]]
        b.time_bin, b.event = b.time_bin.to(device), b.event.to(device)
        return b

    train, test = dm.datasets["train"], dm.datasets["test"]
    rng = np.random.default_rng(0)
    epoch_s, wait_s, step_s = [], 0.0, 0.0
    with PeakRSS() as rss:
        for _ in range(epochs):
            net.train()
            t0 = time.perf_counter()
            opt.zero_grad()
            for k, i in enumerate(rng.permutation(len(train))):
                t = time.perf_counter()
                b = batch_of(train, int(i))
                t1 = time.perf_counter()
                loss = (
                    nll_discrete_survival(net(b).hazard_logits, b.time_bin, b.event, alpha=0.0) / accumulation
                )
                loss.backward()
                if (k + 1) % accumulation == 0:
                    opt.step()
                    opt.zero_grad()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                wait_s += t1 - t
                step_s += time.perf_counter() - t1
            opt.step()
            epoch_s.append(time.perf_counter() - t0)
        net.eval()
        eval_s = float("inf")
        for _ in range(EVAL_PASSES):
            risks = []
            t = time.perf_counter()
            with torch.no_grad():
                for i in range(len(test)):
                    risks.append(
                        float(-survival_from_hazard_logits(net(batch_of(test, i)).hazard_logits).sum())
                    )
            eval_s = min(eval_s, time.perf_counter() - t)
    ci = harrell_cindex(np.array(risks), test.rows["time"].to_numpy(float), test.rows["event"].to_numpy(bool))
    return {
        "train_patients_per_s": len(train) / _typical(epoch_s),
        "epoch_s": epoch_s,
        "data_wait_share": wait_s / max(wait_s + step_s, 1e-9),
        "eval_patients_per_s": len(test) / eval_s,
        "test_cindex": float(ci),
        "peak_host_gb": rss.peak / 1e9,
        "peak_device_gb": device_peak_gb(),
        "overrides": [f"batch 1, torch.load per step, fp32, accumulation {accumulation}"],
    }


# ------------------------------------------------------------------------------------------------ cohort
def cohort_spec(args: argparse.Namespace, n_patients: int | None = None) -> dict[str, Any]:
    """SyntheticSpec fields of the benchmark cohort: ~`patches` patches per patient over 1-3 slides (x20)."""
    per_slide = max(2, args.patches // 2)
    return {
        "n_patients": n_patients or args.patients,
        "feature_dim": args.dim,
        "slides_per_patient": [1, 3],
        "patches_per_slide": [max(1, per_slide // 2), per_slide + per_slide // 2],
        "multiscale": True,
        "storage_dtype": "float16",
        "formats": ["pt"],
        "seed": 0,
        "signal_scale": args.signal_scale,
        "wsi_signal_strength": args.signal_strength,
    }


def oracle_cindex(root: Path, dm: Any) -> dict[str, float]:
    """Test-fold C-index of the planted truth (truth.csv, joined by case_id): `wsi` = the WSI latent alone (the
    ceiling of a WSI-only model), `all` = the full log-hazard (WSI + genomics + clinical)."""
    import pandas as pd

    from survlab.metrics.survival import harrell_cindex

    truth = pd.read_csv(root / "truth.csv").set_index("case_id")
    test = dm.datasets["test"]
    t, e = test.rows["time"].to_numpy(float), test.rows["event"].to_numpy(bool)
    cases = list(test.case_ids)
    return {
        "wsi": float(harrell_cindex(truth.loc[cases, "z_wsi"].to_numpy(), t, e)),
        "all": float(harrell_cindex(truth.loc[cases, "true_risk"].to_numpy(), t, e)),
    }


def cohort_root(args: argparse.Namespace, n_patients: int | None = None) -> Path:
    """Folder of the benchmark cohort (cached between runs; the name holds what varies)."""
    name = f"bench_p{n_patients or args.patients}_n{args.patches}_d{args.dim}"
    name = name if args.signal_scale == "x5" else f"{name}_s{args.signal_scale}"
    return Path(args.data) / (name if args.signal_strength == 3.0 else f"{name}_a{args.signal_strength:g}")


def summarize(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """One loop's result over the folds: means of the per-fold numbers (peak memory: the maximum), the C-index
    spread (sd over folds, ddof 1), every fold's result under `per_fold`."""
    out = dict(per_fold[0])
    for k in ("train_patients_per_s", "eval_patients_per_s", "data_wait_share", "test_cindex", "train_s"):
        if k in out:
            out[k] = float(np.mean([r[k] for r in per_fold]))
    for k in ("peak_host_gb", "peak_device_gb"):
        vals = [r[k] for r in per_fold if r.get(k) is not None]
        out[k] = max(vals) if vals else None
    ci = [r["test_cindex"] for r in per_fold]
    out["test_cindex_sd"] = float(np.std(ci, ddof=1)) if len(ci) > 1 else None
    out["folds"] = [r["fold"] for r in per_fold]
    out["per_fold"] = per_fold
    return out


def feature_bytes(dm: Any, train: bool = True) -> int:
    """Bytes of features one pass over the training (or test) bags reads: every store the model reads (the
    single-scale bags, or each scale of a multi-scale cohort), each patient's bag after that store's cap (training:
    `max_patches_per_scale[scale]`, else `max_patches`; evaluation: `eval_max_patches`), x its dim x the bytes per
    value of what the store serves (`store_itemsize`)."""
    ds = dm.datasets["train" if train else "test"]
    rows = ds.rows
    stores = {"wsi": dm.sources.wsi} if dm.sources.wsi is not None else {}
    stores.update(dm.sources.scales or {})
    total = 0
    for name, st in stores.items():
        sizes = dm.store_patches[name]
        cap = ds._cap(None if name == "wsi" else name)  # the cap the dataset itself applies
        dim = dm.dims.wsi_dim if name == "wsi" else dm.dims.scale_dims[name]
        n = [sum(sizes[s] for s in ss) for ss in rows["slide_ids"]]
        patches = sum(min(x, cap) if cap else x for x in n)
        total += patches * int(dim) * store_itemsize(st, rows["slide_ids"].iloc[0][0])
    return total


def store_itemsize(store: Any, slide_id: str) -> int:
    """Bytes per feature value a BagStore serves: the resident store's or the RAM cache's dtype, else the packed
    file's dtype, else the dtype of the source file of `slide_id` (one encoder writes one dtype)."""
    import torch

    from survlab.data.modalities.wsi_files import read_header

    if store.resident is not None:  # data.wsi.cache=device: one flat tensor in the cache dtype
        dtype = store.resident.dtype
    elif store.cache_enabled:  # read before the packed file (load_raw)
        dtype = store.cache_dtype
    elif store.packed is not None:
        dtype = getattr(torch, store.packed.dtype)
    else:
        dtype = getattr(torch, str(read_header(store.path_of(slide_id)).dtype))
    return int(torch.empty((), dtype=dtype).element_size())


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    malloc_reuse = args.malloc_reuse and reuse_freed_buffers()  # process-wide: every loop of this run gets it
    root = cohort_root(args)
    variants = {} if args.only_variants else dict(DEFAULT_VARIANTS)
    for v in args.variants or []:
        name, _, ov = v.partition("=")
        variants[name] = [o for o in ov.split(",") if o]
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "cohort": cohort_spec(args),
        "epochs": args.epochs,
        "folds": list(args.folds),
        "runs": {},
        "malloc_reuse": malloc_reuse,
        "host_bandwidth_gbs": host_bandwidth_gbs(),
        "device_bandwidth_gbs": device_bandwidth_gbs(),
    }
    spec = cohort_spec(args)
    t = time.perf_counter()
    from survlab.data.sources.synthetic import generate_cohort
    from survlab.data.sources.synthetic_spec import SyntheticSpec

    generate_cohort(
        root, SyntheticSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    )
    results["cohort_write_s"] = time.perf_counter() - t
    for model in args.models:
        per_fold: dict[str, list[dict[str, Any]]] = {}
        for fold in args.folds:  # every loop sees the same folds; C-index spread over folds in the table
            fo = [f"fold={fold}"]
            if not args.no_usual:
                r = usual_loop(model, root, spec, args.epochs, lr=args.usual_lr, overrides=fo)
                per_fold.setdefault("usual", []).append({**r, "fold": fold})
            for name, ov in variants.items():
                per_fold.setdefault(name, []).append(
                    {**survlab_loop(model, root, spec, args.epochs, [*fo, *ov]), "fold": fold}
                )
        runs: dict[str, Any] = {name: summarize(rs) for name, rs in per_fold.items()}
        results.setdefault("oracle_cindex", {}).update(
            {
                str(f): oracle_cindex(
                    root, build(compose(model, root, spec, [f"fold={f}", "++data.wsi.cache=false"]))[0]
                )
                for f in args.folds
                if str(f) not in results.get("oracle_cindex", {})
            }
        )
        dm, _, _ = build(compose(model, root, spec, [f"fold={args.folds[0]}"]))
        bw = results["device_bandwidth_gbs"] or results["host_bandwidth_gbs"]
        runs["floor"] = {"bytes_per_epoch": feature_bytes(dm), "epoch_s": feature_bytes(dm) / (bw * 1e9)}
        results["runs"][model] = runs
        _save(results, out)
    results["scaling"] = scaling(args, root) if args.sizes or args.patch_caps else {}
    _save(results, out)
    return results


def scaling(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """survlab (ABMIL, first variant after the default) epoch time against cohort size and patches per patient."""
    best = args.scaling_variant
    ov = [*DEFAULT_VARIANTS.get(best, []), *(args.scaling_overrides or [])]
    sizes = {}
    for n in args.sizes:
        spec = cohort_spec(args, n)
        r = cohort_root(args, n)
        from survlab.data.sources.synthetic import generate_cohort
        from survlab.data.sources.synthetic_spec import SyntheticSpec

        generate_cohort(
            r, SyntheticSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
        )
        res = survlab_loop("abmil", r, spec, 1, ov)
        sizes[n] = {
            "epoch_s": res["epoch_s"][-1],
            "train_patients_per_s": res["train_patients_per_s"],
            "peak_host_gb": res["peak_host_gb"],
            "feature_gb": _cohort_feature_gb(r),
        }
    caps = {}
    spec = cohort_spec(args)
    for cap in args.patch_caps:
        res = survlab_loop("abmil", root, spec, 1, [*ov, f"data.max_patches={cap}"])
        caps[cap] = {
            "epoch_s": res["epoch_s"][-1],
            "train_patients_per_s": res["train_patients_per_s"],
            "peak_host_gb": res["peak_host_gb"],
        }
    return {"variant": best, "overrides": ov, "cohort_size": sizes, "patches_per_patient": caps}


def _cohort_feature_gb(root: Path) -> float:
    """GB of the x20 feature files (what ABMIL reads) the cohort holds on disk."""
    return sum(f.stat().st_size for f in (root / "features" / "synthetic" / "pt_files").glob("*.pt")) / 1e9


def _save(results: dict[str, Any], out: Path) -> None:
    (out / "bench.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    (out / "bench.md").write_text(to_markdown(results))
    if results.get("scaling"):
        plot_scaling(results["scaling"], out / "scaling.png")


def to_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']} x{m['cpu_count']} ({m['threads']} torch threads), GPU: {m['gpu'] or 'none'}; "
        f"torch {m['torch']}. Host bandwidth {results['host_bandwidth_gbs']:.1f} GB/s"
        + (
            f", device {results['device_bandwidth_gbs']:.0f} GB/s"
            if results.get("device_bandwidth_gbs")
            else ""
        )
        + (". malloc reuse on" if results.get("malloc_reuse") else "")
        + f". Epochs: {results['epochs']}. Folds: {results.get('folds', [0])} (numbers: mean over folds; "
        "C-index: mean ± sd over folds)." + _oracle_line(results),
        "",
        "| model | loop | train patients/s | x usual | eval patients/s | data wait | peak host GB | peak device GB "
        "| test C-index |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, runs in results["runs"].items():
        usual = runs["usual"]["train_patients_per_s"] if "usual" in runs else float("nan")
        for name, r in runs.items():
            if name == "floor":
                continue
            dev = "-" if r["peak_device_gb"] is None else f"{r['peak_device_gb']:.2f}"
            lines.append(
                f"| {model} | {name} | {r['train_patients_per_s']:.1f} | {r['train_patients_per_s'] / usual:.2f} | "
                f"{r['eval_patients_per_s']:.1f} | {100 * r['data_wait_share']:.0f}% | {r['peak_host_gb']:.2f} | "
                f"{dev} | {r['test_cindex']:.3f}{_sd(r)} |"
            )
        f = runs["floor"]
        lines.append(
            f"| {model} | floor (bytes / bandwidth) | epoch {f['epoch_s']:.3f} s for "
            f"{f['bytes_per_epoch'] / 1e9:.2f} GB | | | | | | |"
        )
    sc = results.get("scaling") or {}
    if sc.get("cohort_size"):
        lines += [
            "",
            f"Scaling (ABMIL, {sc['variant']}, overrides {sc.get('overrides', [])}):",
            "",
            "| patients | features on disk GB | epoch s | train patients/s | peak host GB |",
            "|---|---|---|---|---|",
        ]
        for n, r in sorted(sc["cohort_size"].items(), key=lambda kv: float(kv[0])):
            gb = "-" if r.get("feature_gb") is None else f"{r['feature_gb']:.2f}"
            peak = "-" if r.get("peak_host_gb") is None else f"{r['peak_host_gb']:.2f}"
            lines.append(f"| {n} | {gb} | {r['epoch_s']:.2f} | {r['train_patients_per_s']:.1f} | {peak} |")
    return "\n".join(lines) + "\n"


def _oracle_line(results: dict[str, Any]) -> str:
    o = results.get("oracle_cindex") or {}
    if not o:
        return ""
    wsi, full = (np.mean([v[k] for v in o.values()]) for k in ("wsi", "all"))
    return f" Planted truth on the test folds: C-index {wsi:.3f} (WSI latent alone), {full:.3f} (full log-hazard)."


def _sd(r: dict[str, Any]) -> str:
    return f" ± {r['test_cindex_sd']:.3f}" if r.get("test_cindex_sd") is not None else ""


def plot_scaling(scaling: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for a, key, label in (
        (ax[0], "cohort_size", "patients in the cohort"),
        (ax[1], "patches_per_patient", "max patches per patient (training cap)"),
    ):
        xs = sorted(scaling[key], key=float)
        a.plot([float(x) for x in xs], [scaling[key][x]["epoch_s"] for x in xs], "o-")
        a.set_xlabel(label)
        a.set_ylabel("epoch time (s)")
        a.grid(alpha=0.3)
    fig.suptitle(f"survlab ABMIL epoch time ({scaling['variant']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="survlab bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument(
        "--patches", type=int, default=10_000, help="mean x20 patches per patient (over 1-3 slides)"
    )
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--models", nargs="*", default=["abmil", "ggmf", "crossfusion"], choices=MODELS)
    ap.add_argument("--variants", nargs="*", help="extra survlab variants: name=override,override")
    ap.add_argument("--sizes", type=int, nargs="*", default=[250, 500, 1000])
    ap.add_argument("--patch-caps", type=int, nargs="*", default=[1024, 2048, 4096, 8192])
    ap.add_argument("--scaling-variant", default="survlab+packed+bucketing", choices=sorted(DEFAULT_VARIANTS))
    ap.add_argument(
        "--folds",
        type=int,
        nargs="+",
        default=[0],
        help="outer folds to train and test on (C-index reported as mean ± sd over them)",
    )
    ap.add_argument(
        "--signal-scale",
        default="x20",
        choices=["x20", "x10", "x5"],
        help="scale whose patches carry the planted risk signal (x20: what ABMIL/GGMF read)",
    )
    ap.add_argument(
        "--signal-strength",
        type=float,
        default=3.0,
        help="amplitude of the planted risk direction on signal patches (noise sd 1; synthetic default 3)",
    )
    ap.add_argument(
        "--usual-lr", type=float, default=2e-4, help="the usual loop's Adam learning rate (CLAM/MCAT)"
    )
    ap.add_argument(
        "--only-variants", action="store_true", help="run only --variants (not the default three)"
    )
    ap.add_argument("--no-usual", action="store_true", help="skip the usual loop")
    ap.add_argument(
        "--scaling-overrides",
        nargs="*",
        help="extra overrides of the scaling runs, e.g. ++data.wsi.cache=false (memory bounded by config)",
    )
    ap.add_argument(
        "--malloc-reuse",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="glibc: reuse freed batch buffers, as survlab.run does by default (survlab/utils/malloc.py)",
    )
    ap.add_argument("--data", default=os.environ.get("SURVLAB_BENCH_DATA", "data/bench"))
    ap.add_argument("--out", default="experiments/speed/latest")
    args = ap.parse_args(argv)
    try:
        res = run(args)
    finally:  # leave no global Hydra state behind (the test suite runs this in-process)
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig

        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
    print(to_markdown(res))


if __name__ == "__main__":
    main()
