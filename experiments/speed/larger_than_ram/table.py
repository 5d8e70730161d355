"""The table of README.md from results/ (`python table.py [results_dir]`): one row per run of run.sh."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUNS = {
    "packed_cache_off": "packed store, RAM cache off",
    "pt_cache_off": "source .pt files, RAM cache off",
    "packed_cache_auto_8gb": "packed store, RAM cache auto, cache_max_gb=8",
    "packed_cache_off_nolimit": "packed store, RAM cache off, NO cgroup (control)",
}


def cgroup_file(path: Path) -> dict[str, str]:
    """key -> value of the `<run>.cgroup` lines run.sh writes (counters, oom_control, the kernel's kill lines)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        if "Killed process" in line:
            out["killed"] = line.split("Killed process", 1)[1].strip()
        elif " " in line:
            k, v = line.split(" ", 1)
            out[k] = v
    return out


def row(results: Path, name: str) -> str:
    c = cgroup_file(results / f"{name}.cgroup")
    limited = not name.endswith("_nolimit")
    peak_cg = f"{int(c['max_usage_in_bytes']) / 1e9:.2f}" if limited and c.get("max_usage_in_bytes") else "-"
    oom = c.get("oom_kill", "-") if limited else "-"
    f = results / f"{name}.json"
    if not f.is_file():  # killed before it wrote its result
        killed = c.get("killed", "")
        anon = next((p for p in killed.split(", ") if p.startswith("anon-rss")), "")
        return (
            f"| {RUNS[name]} | killed (rc {c.get('rc')}) | - | - | - | - | {anon} at the kill | {peak_cg} | "
            f"{c.get('failcnt', '-')} | {oom} | - |"
        )
    r = json.loads(f.read_text())
    st = (r.get("cgroup_at_exit") or {}).get("stat") or {}
    at_exit = f"{st['cache'] / 1e9:.2f} / {st['rss'] / 1e9:.2f}" if st else "-"
    epochs = " / ".join(f"{e:.1f}" for e in r["epoch_s"])
    return (
        f"| {RUNS[name]} | ok (rc {c.get('rc')}) | {epochs} | {r['train_patients_per_s']:.1f} | "
        f"{100 * r['data_wait_share']:.0f}% | {r['eval_patients_per_s']:.1f} | {r['peak_host_gb']:.2f} | "
        f"{peak_cg} | {c.get('failcnt', '-') if limited else '-'} | {oom} | {at_exit} |"
    )


def main(results: Path) -> str:
    lines = [
        "| run | outcome | epoch s (1 / 2) | train patients/s | data wait | eval patients/s | peak RSS GB "
        "| cgroup peak GB | failcnt | OOM kills | page cache / rss GB at exit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(results, n) for n in RUNS if (results / f"{n}.cgroup").is_file()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"))
