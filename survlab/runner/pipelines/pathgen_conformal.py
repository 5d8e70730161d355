"""Stage 3 of the PathGen pipeline, `conformal/`: split-conformal sets for grade and survival bin per setting (model x
genomics source) and alpha, calibrated on the calibration patients of the SAME source as the test patients, with
subgroup tables, computed and written by the shared conformal code (survlab.report.conformal).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from survlab.metrics.conformal import calibrate_and_predict
from survlab.report.conformal import (
    ConformalTarget,
    conformal_cell,
    probs_and_labels,
    sets_frame,
    write_conformal_files,
)
from survlab.report.figures import plot_coverage


def _subgroups(cfg: DictConfig, frame: pd.DataFrame, cal_risk: np.ndarray) -> pd.DataFrame:
    """Subgroup columns for the test rows of `frame`: clinical columns (by case_id), numeric ones cut at
    `pipeline.conformal.bands`, the true grade, and the risk tertile (cut-points from the CALIBRATION risks)."""
    c = cfg.pipeline.conformal
    label = c.label
    out = pd.DataFrame(index=frame.index)
    wanted = [s for s in c.subgroups if s not in (label, "risk_bin")]
    if wanted:
        root = Path(cfg.data.root)
        clinical = pd.read_csv(root / cfg.data.get("clinical_csv", "clinical.csv"), dtype={"case_id": str})
        missing = [s for s in wanted if s not in clinical.columns]
        if missing:
            raise ValueError(
                f"pipeline.conformal.subgroups {missing} are not columns of {root / 'clinical.csv'} "
                f"(columns: {list(clinical.columns)[:12]}); fix the list"
            )
        per_case = clinical.groupby("case_id")[wanted].first()
        for s in wanted:
            values = per_case[s].reindex(frame["case_id"]).to_numpy()
            bands = (c.get("bands") or {}).get(s)
            if bands is not None:
                edges = [-math.inf, *bands, math.inf]
                cut = pd.cut(pd.to_numeric(values, errors="coerce"), edges, right=False)
                values = np.asarray(
                    [str(v) if isinstance(v, pd.Interval) else "missing" for v in cut], dtype=object
                )
            out[s] = values
    if label in c.subgroups:
        out[label] = frame[label].to_numpy()
    if "risk_bin" in c.subgroups:
        edges = np.quantile(cal_risk, [1 / 3, 2 / 3])
        out["risk_bin"] = np.asarray(["low", "mid", "high"])[np.searchsorted(edges, frame["risk"].to_numpy())]
    return out


def _setting_arrays(
    frame: pd.DataFrame, source: str, target: str, label: str, n_bins: int, names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """The calibration and test rows of `source` as the shared conformal code reads them
    (survlab.report.conformal.probs_and_labels: LAC probabilities, true class / known bin under its censoring rule)
    → (cal probs [n_cal, K], cal labels [n_cal] (−1 unknown), test probs [n, K], test labels [n], test rows)."""
    rows = frame[frame["source"] == source]
    cal, test = rows[rows["part"] == "calibration"], rows[rows["part"] == "test"]
    if cal.empty or test.empty:
        raise ValueError(
            f"conformal: source {source!r} has {len(cal)} calibration and {len(test)} test rows; "
            f"both are needed (same genomics source for calibration and test)"
        )
    if target == label:
        k = frame.filter(regex=f"^{label}_prob_").shape[1]
        spec = ConformalTarget(target, "class", tuple(names or map(str, range(k))))
    else:
        spec = ConformalTarget(target, "survival_bin", tuple(names or (f"bin{k}" for k in range(n_bins))))

    def arrays(part: pd.DataFrame) -> tuple[np.ndarray, ...]:
        if target == label:
            cols = {"probs": part.filter(regex=f"^{label}_prob_").to_numpy(), "label": part[label].to_numpy()}
        else:
            cols = {
                "hazard_logits": part.filter(regex="^hazard_").to_numpy(),
                "time_bin": part["time_bin"].to_numpy(),
                "event": part["event"].to_numpy(),
                **({"time": part["time"].to_numpy()} if "time" in part else {}),
            }
        return probs_and_labels(spec, {"index": np.arange(len(part)), **cols})

    _, cal_p, cal_y = arrays(cal)
    test_idx, test_p, test_y = arrays(test)
    return cal_p, cal_y, test_p, test_y, test.iloc[test_idx]


def conformal_setting(
    frame: pd.DataFrame, source: str, target: str, alpha: float, label: str, n_bins: int
) -> tuple[float, np.ndarray, np.ndarray, pd.DataFrame, int]:
    """Calibrate on the calibration rows of `source` and predict the test rows of the SAME `source`.

    → (q̂, test sets [n, K], test labels [n] (−1 unknown), test rows, number of calibration patients excluded).
    Raises CalibrationSizeError when the calibration part is too small for `alpha`."""
    cal_p, cal_y, test_p, test_y, test = _setting_arrays(frame, source, target, label, n_bins)
    qhat, sets = calibrate_and_predict(cal_p, cal_y, test_p, alpha)
    return qhat, sets, test_y, test, int((cal_y < 0).sum())


def run_conformal(
    cfg: DictConfig, out_dir: Path, stage_dir: Path, settings: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """Split-conformal sets per setting (name → (stage, source)) × target (grade, survival_bin) × alpha, computed
    and written by the shared conformal code (survlab.report.conformal: `conformal_cell`, `write_conformal_files`)."""
    c = cfg.pipeline.conformal
    label, tables, sets_rows, summary = c.label, [], [], {}
    for setting, (stage, source) in settings.items():
        frame = pd.read_csv(out_dir / stage / "eval_predictions.csv", dtype={"case_id": str})
        meta = json.loads((out_dir / stage / "classes.json").read_text())
        classes, n_bins = meta[label], int(meta["n_bins"])
        cal_rows = frame[(frame["source"] == source) & (frame["part"] == "calibration")]
        for target in (label, "survival_bin"):
            names = classes if target == label else [f"bin{k}" for k in range(n_bins)]
            cal_p, cal_y, test_p, test_y, test = _setting_arrays(frame, source, target, label, n_bins, names)
            groups = _subgroups(cfg, test, cal_rows["risk"].to_numpy())
            if label in groups:
                groups[label] = [classes[i] if i >= 0 else "missing" for i in groups[label]]
            for alpha in c.alphas:
                key = f"{setting}/{target}/alpha={float(alpha):g}"
                cell = conformal_cell(
                    names, cal_p, cal_y, test_p, test_y, float(alpha), "marginal", groups, key
                )
                table = cell.table
                table.insert(0, "setting", f"{setting} · {target} · α={float(alpha):g}")
                table.insert(1, "model", stage)
                table.insert(2, "source", source)
                table.insert(3, "target", target)
                table.insert(4, "alpha", float(alpha))
                tables.append(table)
                summary[key] = {
                    "model": stage,
                    "calibration_source": source,
                    "test_source": source,
                    "target": target,
                    "alpha": float(alpha),
                    "method": "marginal",
                    "classes": list(names),
                    **cell.summary,
                }
                if cell.note:
                    continue
                sets = sets_frame(test["case_id"].to_numpy(), names, cell)
                sets.insert(0, "setting", setting)
                sets.insert(1, "target", target)
                sets.insert(2, "alpha", float(alpha))
                sets_rows.append(sets)
    write_conformal_files(
        stage_dir,
        c.alphas,
        summary,
        tables,
        sets_rows,
        ["setting", "target", "alpha", "case_id", "set", "set_size", "label", "covered"],
        entries_key="settings",
    )
    first = float(c.alphas[0])
    table = pd.concat(tables, ignore_index=True)
    plot_coverage(
        table[table["alpha"] == first],
        first,
        stage_dir / "conformal.png",
        title=f"{cfg.data.name} fold {cfg.fold}: split-conformal coverage (bars) and mean set size (numbers)",
    )
    return summary
