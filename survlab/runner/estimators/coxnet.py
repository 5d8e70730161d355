"""`model=coxnet`: a penalised linear Cox model fitted exactly by scikit-survival on the fold's preprocessed training
matrices, its penalty chosen WITHOUT the test fold, then tested and reported through the usual Lightning path.

Protocol, per outer fold: the rows are the data module's own (same split, same fitted gene scaler / clinical
encoder / feature filter as every network, joined by case_id and put in case_id order); the elastic-net path
(`CoxnetSurvivalAnalysis`, alphas from the patients it is fitted on) is scored by Harrell's C-index on held-out
patients, and the coefficients of the best penalty are loaded into `survlab.models.linear_cox.LinearCox`,
checkpointed and tested once:
- `select: cv`: k-fold cross-validation (stratified by event, seeded) over the fold's whole TRAINING PART — inner
  train + inner validation, never test — and the model fitted on that whole part: the inner validation split plays
  no role of its own, so leaving it out would only discard patients. `val/best` is the CV C-index of the chosen
  penalty (the inner validation patients are in the fit, so their score is not held-out).
- `select: val`: the path fitted on the inner training split, the penalty chosen on the inner validation split
  (`val/best` = its C-index there).
Preprocessing (gene scaler, clinical encoder, gene filter) is the data module's, fitted on the inner training split
as for every network. Outputs: the usual run files plus `coefficients.csv` (feature, coefficient) and
`estimator.json` (the penalty path with its scores); protocol.json gets an `estimator` entry naming the patients the
model was fitted on (`fitted_on`, `n_fit`) and what chose its penalty (`selected_on`).

Example (config, `model.estimator`):
    _target_: survlab.runner.estimators.coxnet.PenalisedCox
    l1_ratio: 0.5        # 1 = lasso, small = ridge-like
    select: cv
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from survlab.metrics.survival import harrell_cindex
from survlab.utils.files import atomic_path
from survlab.utils.outputs import write_json

log = logging.getLogger("survlab.run")

SELECT = ("cv", "val")


@dataclass
class CoxFit:
    """A fitted penalised Cox model: the chosen penalty, coefficients [F], offset (risk = x · coef − offset), the
    penalty path with each alpha's held-out C-index (`scores`, mean over inner folds for select=cv) and the number
    of patients the coefficients were fitted on (`n_fit`)."""

    alpha: float
    coef: np.ndarray
    offset: float
    alphas: list[float] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    n_fit: int = 0

    @property
    def best_score(self) -> float | None:
        """The held-out C-index of the chosen penalty (None when undefined)."""
        return self.scores[self.alphas.index(self.alpha)] if self.alpha in self.alphas else None


@dataclass
class PenalisedCox:
    """Elastic-net Cox (scikit-survival `CoxnetSurvivalAnalysis`) with the penalty chosen on held-out patients.

    Objective: −(1/n) log PL(w) + alpha · (l1_ratio · |w|_1 + (1 − l1_ratio)/2 · |w|²) (Breslow ties).

    Args:
        l1_ratio: elastic-net mixing in (0, 1] (1 = lasso; small = ridge-like).
        n_alphas / alpha_min_ratio: the penalty path (from the largest alpha that zeroes every coefficient down).
        select: "cv" (k-fold CV over the whole training part, which the model is then fitted on) or "val" (path
            fitted on the inner training split, penalty chosen on the inner validation split).
        cv_folds: folds of the inner CV; seed: its shuffling seed.
        max_iter: coordinate-descent iterations per alpha.
    """

    l1_ratio: float = 0.5
    n_alphas: int = 50
    alpha_min_ratio: float = 0.01
    select: str = "cv"
    cv_folds: int = 5
    seed: int = 0
    max_iter: int = 100000

    def __post_init__(self) -> None:
        if not 0.0 < float(self.l1_ratio) <= 1.0:
            raise ValueError(
                f"model.estimator.l1_ratio={self.l1_ratio}: must be in (0, 1] (1 = lasso; e.g. 0.01 is "
                f"ridge-like)"
            )
        if self.select not in SELECT:
            raise ValueError(f"model.estimator.select={self.select!r}: must be one of {list(SELECT)}")
        if int(self.cv_folds) < 2:
            raise ValueError(f"model.estimator.cv_folds={self.cv_folds}: must be >= 2")
        try:
            import sksurv.linear_model  # noqa: F401
        except ImportError:
            raise ValueError(
                "model=coxnet needs scikit-survival (and scikit-learn): pip install 'scikit-survival==0.28.*'"
            ) from None

    def _model(self, alphas: np.ndarray | None = None) -> Any:
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        return CoxnetSurvivalAnalysis(
            l1_ratio=float(self.l1_ratio),
            n_alphas=int(self.n_alphas),
            alpha_min_ratio=float(self.alpha_min_ratio),
            alphas=alphas,
            max_iter=int(self.max_iter),
        )

    def path(
        self, x: np.ndarray, time: np.ndarray, event: np.ndarray, alphas: np.ndarray | None = None
    ) -> Any:
        """The fitted coefficient path on rows x [N, F] (alphas from these rows when not given)."""
        from sksurv.util import Surv

        if not np.asarray(event, bool).any():
            raise ValueError("coxnet: no events among the patients it is fitted on; use fewer folds")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at the smallest alphas: their scores say so
            return self._model(alphas).fit(
                np.asarray(x, np.float64), Surv.from_arrays(np.asarray(event, bool), np.asarray(time, float))
            )

    @staticmethod
    def _scores(model: Any, x: np.ndarray, time: np.ndarray, event: np.ndarray) -> np.ndarray:
        """Harrell's C-index of every alpha of a fitted path on held-out rows -> [n_alphas]."""
        risks = np.asarray(x, np.float64) @ model.coef_  # [N, n_alphas]; the offset does not change a ranking
        return np.array([harrell_cindex(risks[:, i], time, event) for i in range(risks.shape[1])])

    def fit(
        self,
        x: np.ndarray,
        time: np.ndarray,
        event: np.ndarray,
        x_val: np.ndarray | None = None,
        time_val: np.ndarray | None = None,
        event_val: np.ndarray | None = None,
    ) -> CoxFit:
        """Choose the penalty and return the fit: select=val: path on the training rows x [N, F], penalty chosen on
        the validation rows; select=cv: the validation rows (when given) join the training rows, k-fold CV over all
        of them chooses the penalty and the returned model is fitted on all of them."""
        if self.select == "cv" and x_val is not None and time_val is not None and event_val is not None:
            x = np.vstack([np.asarray(x, np.float64), np.asarray(x_val, np.float64)])
            time = np.concatenate([np.asarray(time, float), np.asarray(time_val, float)])
            event = np.concatenate([np.asarray(event, bool), np.asarray(event_val, bool)])
        full = self.path(x, time, event)
        alphas = np.asarray(full.alphas_, float)
        if self.select == "val":
            if x_val is None or time_val is None or event_val is None:
                raise ValueError("coxnet select=val needs the inner validation rows")
            scores = self._scores(full, x_val, time_val, event_val)
        else:
            from sklearn.model_selection import StratifiedKFold

            folds = StratifiedKFold(n_splits=int(self.cv_folds), shuffle=True, random_state=int(self.seed))
            per_fold = []
            for fit_rows, held_rows in folds.split(x, np.asarray(event, int)):
                model = self.path(x[fit_rows], time[fit_rows], event[fit_rows], alphas=alphas)
                scores_k = self._scores(model, x[held_rows], time[held_rows], event[held_rows])
                # the path may stop early (scikit-survival ends it once the fit saturates): NaN past its end
                per_fold.append(np.pad(scores_k, (0, len(alphas) - len(scores_k)), constant_values=np.nan))
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", RuntimeWarning
                )  # all-NaN column: a held-out fold without pairs
                scores = np.nanmean(np.vstack(per_fold), axis=0)
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        best = int(np.argmax(scores))  # alphas descend: ties go to the larger penalty (the simpler model)
        return CoxFit(
            alpha=float(alphas[best]),
            coef=np.asarray(full.coef_[:, best], float),
            offset=float(full.offset_[best]),
            alphas=alphas.tolist(),
            scores=[float(s) if np.isfinite(s) else None for s in scores],
            n_fit=len(time),
        )


def table_rows(
    net: Any, loader: Any, datamodule: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The rows a table network reads for the patients of `loader`, in case_id order -> (x [N, F], time [N],
    event [N] from the cohort table, case_ids [N])."""
    xs: list[np.ndarray] = []
    index: list[int] = []
    with torch.no_grad():
        for batch in loader:
            xs.append(net.features(batch).double().numpy())
            index.extend(int(i) for i in batch.index)
    case_ids = [datamodule.full_cohort.case_ids[i] for i in index]
    order = np.argsort(np.asarray(case_ids, dtype=object), kind="stable")
    x = np.vstack(xs)[order]
    ids = [case_ids[i] for i in order]
    rows = datamodule.full_cohort.rows(ids)
    return x, rows["time"].to_numpy(float), rows["event"].to_numpy(bool), ids


def feature_names(net: Any, datamodule: Any) -> list[str]:
    """Names of the columns of `net.features`: gene symbols (group order) then encoded clinical features."""
    names: list[str] = []
    for m in net.inputs:
        if m == "genomics":
            names += [g for grp in datamodule.fitted.gene_groups.genes for g in grp]
        elif m == "clinical":
            names += list(datamodule.dims.clinical_names or ())
    return names


def fit_estimator(
    cfg: DictConfig, task: L.LightningModule, datamodule: Any, trainer: L.Trainer, out_dir: Path
) -> tuple[str, dict[str, Any]]:
    """Fit `cfg.model.estimator` on the fold's training part (select=cv: inner train + inner validation;
    select=val: inner train, penalty chosen on inner validation), load it into `task.net`, checkpoint it ->
    (checkpoint path, {val/best, estimator facts for protocol.json}). val/best: select=val, the monitored metric on
    the inner validation split; select=cv, the CV C-index of the chosen penalty (when the monitor is val/cindex;
    else None: the inner validation patients are in the fit)."""
    estimator: PenalisedCox = hydra.utils.instantiate(cfg.model.estimator)
    net: Any = task.net
    x, t, e, train_ids = table_rows(net, datamodule.train_eval_dataloader(), datamodule)
    xv, tv, ev, val_ids = table_rows(net, datamodule.val_dataloader(), datamodule)
    result = estimator.fit(x, t, e, xv, tv, ev)
    net.set_coefficients(result.coef, result.offset)
    validated = trainer.validate(task, datamodule=datamodule, verbose=False)
    if estimator.select == "val":
        val_score = (
            float(validated[0][str(cfg.monitor)]) if validated and str(cfg.monitor) in validated[0] else None
        )
    else:  # the inner validation patients are in the fit: their score is not held-out, the CV score is
        val_score = result.best_score if str(cfg.monitor) == "val/cindex" else None
    ckpt = out_dir / "checkpoints" / "coxnet.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=True)
    names = feature_names(net, datamodule)
    with atomic_path(out_dir / "coefficients.csv") as tmp:
        pd.DataFrame({"feature": names, "coefficient": result.coef}).to_csv(tmp, index=False)
    facts = {
        "class": "sksurv.linear_model.CoxnetSurvivalAnalysis",
        **asdict(estimator),
        "alpha": result.alpha,
        "n_nonzero": int(np.count_nonzero(result.coef)),
        "n_features": len(names),
        "n_train": len(train_ids),
        "n_val": len(val_ids),
        "n_fit": result.n_fit,
        "fitted_on": "training part: inner train + inner validation split (select=cv does not use the inner "
        "validation split on its own)"
        if estimator.select == "cv"
        else "inner training split (the inner validation split chose the penalty)",
        "selected_on": f"training part ({estimator.cv_folds}-fold CV over inner train + inner validation)"
        if estimator.select == "cv"
        else "inner validation split",
        "val_best": "mean CV C-index of the chosen penalty"
        if estimator.select == "cv"
        else f"{cfg.monitor} on the inner validation split",
        "path": {"alphas": result.alphas, "cindex": result.scores},
    }
    write_json(out_dir / "estimator.json", facts)
    log.info(
        "coxnet: alpha %.4g chosen on %s, fitted on %d patients (l1_ratio %g, %d/%d non-zero coefficients), "
        "val/best (%s) %s",
        result.alpha,
        facts["selected_on"],
        result.n_fit,
        estimator.l1_ratio,
        facts["n_nonzero"],
        len(names),
        facts["val_best"],
        f"{val_score:.3f}" if val_score is not None else "n/a",
    )
    return str(ckpt), {"val/best": val_score, "estimator": {k: v for k, v in facts.items() if k != "path"}}
