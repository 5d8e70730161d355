"""HorizonObjective (issue 10, issue 21.4): censoring-aware horizon targets and BCE of probabilities that are
monotone in the horizon, per-horizon IPCW AUC / Brier equal to scikit-survival, metric names known to config_check,
and a planted signal learned through OutcomeTask beside a survival objective."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import roc_auc_score
from sksurv.metrics import brier_score, cumulative_dynamic_auc
from sksurv.util import Surv

# the in-memory data module of the OutcomeTask tests (risk planted in clinical column 3)
from test_outcome import _DM, C

from survlab.config.check import check_config
from survlab.config.check_task import resolve_auto, task_metric_names
from survlab.config.check_values import ConfigError
from survlab.data.batch import Batch, PatientItem, collate
from survlab.models.base import ModalityDims, Prediction, SurvivalNet
from survlab.tasks.objective_horizon import HorizonObjective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.tasks.outcome import OutcomeTask

HORIZONS = [5.0, 10.0]
# (time, event) -> expected target at horizons 5 and 10 (None = masked)
CASES = [
    ((3.0, False), (None, None)),  # censored before both horizons: unknown at both
    ((7.0, False), (0.0, None)),  # censored between: alive at 5, unknown at 10
    ((10.0, False), (0.0, None)),  # censored exactly at 10: masked there (time <= h)
    ((4.0, True), (1.0, 1.0)),  # event before both
    ((5.0, True), (1.0, 1.0)),  # event exactly at 5 counts as "by 5"
    ((8.0, True), (0.0, 1.0)),
    ((12.0, True), (0.0, 0.0)),  # event after both: a control at both
    ((15.0, False), (0.0, 0.0)),
    ((float("nan"), False), (None, None)),  # patient lacking the endpoint
]


def _batch(cases: list[tuple[float, bool]]) -> Batch:
    return collate([PatientItem(case_id=f"p{i}", index=i, time=t, event=e) for i, (t, e) in enumerate(cases)])


def test_targets_mask_patients_censored_before_a_horizon() -> None:
    target, known = HorizonObjective.targets(
        *(np.array(v) for v in zip(*[c for c, _ in CASES], strict=True)), HORIZONS
    )
    expected = [[math.nan if y is None else y for y in ys] for _, ys in CASES]
    assert known.tolist() == [[y is not None for y in ys] for _, ys in CASES]
    np.testing.assert_array_equal(np.where(known, target, math.nan), np.array(expected))


def test_masked_cells_add_nothing_to_the_loss() -> None:
    objective = HorizonObjective(horizons=HORIZONS)
    batch = _batch([c for c, _ in CASES])
    logits = torch.linspace(-2.0, 2.0, 2 * len(CASES)).reshape(len(CASES), 2).requires_grad_()
    loss = objective.loss(Prediction(horizon_logits={"primary": logits}), batch)
    cells = [(i, j, y) for i, (_, ys) in enumerate(CASES) for j, y in enumerate(ys) if y is not None]
    probs = 1 - torch.cumprod(1 - torch.sigmoid(logits.detach()), dim=1)  # P(T <= h_k), interval hazards
    ref = sum(
        torch.nn.functional.binary_cross_entropy(probs[i, j], torch.tensor(y)) for i, j, y in cells
    ) / len(cells)
    assert len(cells) == 12 and loss.item() == pytest.approx(ref.item(), rel=1e-6)
    # the masked logits get no gradient, and moving them leaves the loss unchanged
    (grad,) = torch.autograd.grad(loss, logits)
    masked = torch.tensor([[y is None for y in ys] for _, ys in CASES])
    assert bool((grad[masked] == 0).all()) and bool((grad[~masked] != 0).all())
    moved = logits.detach().clone()
    moved[masked] += 7.0
    assert objective.loss(Prediction(horizon_logits={"primary": moved}), batch).item() == loss.item()
    only_masked = _batch([c for c, ys in CASES if all(y is None for y in ys)])
    assert objective.loss(Prediction(horizon_logits={"primary": torch.zeros(2, 2)}), only_masked) is None


def test_a_named_endpoint_reads_its_own_times_and_head() -> None:
    items = [
        PatientItem(
            case_id=f"p{i}",
            index=i,
            time=20.0,
            event=False,
            endpoint_time={"dfs": t},
            endpoint_event={"dfs": e},
            endpoint_time_bin={"dfs": 0},
        )
        for i, ((t, e), _) in enumerate(CASES)
    ]
    batch, logits = collate(items), torch.randn(len(CASES), 2)
    named = HorizonObjective(horizons=HORIZONS, endpoint="dfs")
    primary = HorizonObjective(horizons=HORIZONS)
    ref = primary.loss(Prediction(horizon_logits={"primary": logits}), _batch([c for c, _ in CASES]))
    assert named.loss(Prediction(horizon_logits={"dfs": logits}), batch).item() == pytest.approx(ref.item())
    with pytest.raises(ValueError, match="horizon_logits\\['dfs'\\]"):
        named.loss(Prediction(horizon_logits={"primary": logits}), batch)
    with pytest.raises(ValueError, match="expected \\[B, 2\\]"):
        named.loss(Prediction(horizon_logits={"dfs": logits[:, :1]}), batch)


def _training(seed: int = 1, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Training outcomes on the test grid, followed up to 16 (an event), with censorings on the horizons."""
    rng = np.random.default_rng(seed)
    time = np.append(rng.choice([1.0, 3.0, 5.0, 7.0, 10.0, 12.0, 15.0], size=n), 16.0)
    return time, np.append(rng.random(n) < 0.5, True)


def test_metrics_equal_sksurv_ipcw_auc_and_brier_with_ties() -> None:
    """auc_<h> is scikit-survival's cumulative/dynamic IPCW AUC and brier_<h> its IPCW Brier score, censoring
    distribution from the training patients — not the naive AUC / Brier over the patients known at h."""
    rng = np.random.default_rng(0)
    n = 60
    time = rng.choice([2.0, 4.0, 5.0, 6.0, 9.0, 10.0, 14.0], size=n)  # ties on the horizons themselves
    event = rng.random(n) < 0.6
    probs = np.sort(np.round(rng.random((n, 2)), 1), axis=1)  # tied scores, monotone in the horizon
    train_time, train_event = _training()
    objective = HorizonObjective(horizons=HORIZONS)
    objective.set_reference(train_time, train_event)
    got = objective.score({"index": np.arange(n), "probs": probs, "time": time, "event": event})
    assert set(got) == set(objective.metric_names) == {"auc_mean", "auc_5", "brier_5", "auc_10", "brier_10"}
    train, test = Surv.from_arrays(train_event, train_time), Surv.from_arrays(event, time)
    for j, h in enumerate(HORIZONS):
        auc = cumulative_dynamic_auc(train, test, probs[:, j], [h])[0][0]
        brier = brier_score(train, test, 1 - probs[:, [j]], [h])[1][0]
        assert got[f"auc_{h:g}"] == pytest.approx(auc, abs=1e-12)
        assert got[f"brier_{h:g}"] == pytest.approx(brier, abs=1e-12)
        case, control = event & (time <= h), time > h
        naive = roc_auc_score(case[case | control], probs[case | control, j])
        assert abs(got[f"auc_{h:g}"] - naive) > 1e-3  # the censoring weights matter here
    assert got["auc_mean"] == pytest.approx((got["auc_5"] + got["auc_10"]) / 2)


def test_metrics_by_hand_and_undefined_auc() -> None:
    """No training censoring (G = 1): the IPCW AUC is the Mann-Whitney AUC of cases vs controls, and the Brier
    score averages over every patient (the one censored before h counts 0)."""
    rows = {
        "index": np.arange(5),
        "probs": np.array([[0.8], [0.4], [0.9], [0.4], [0.2]]),
        "time": np.array([1.0, 4.0, 3.0, 6.0, 8.0]),
        "event": np.array([True, True, False, False, True]),
    }
    objective = HorizonObjective(horizons=[5])
    objective.set_reference(np.array([1.0, 2.0, 9.0]), np.ones(3, bool))
    got = objective.score(rows)
    # horizon 5: cases p0 (0.8), p1 (0.4); controls p3 (0.4), p4 (0.2); p2 censored at 3 is neither
    # pairs (case, control): (.8,.4)=1 (.8,.2)=1 (.4,.4)=1/2 (.4,.2)=1 -> 3.5 / 4
    assert got["auc_5"] == pytest.approx(0.875) and got["auc_mean"] == pytest.approx(0.875)
    assert got["brier_5"] == pytest.approx((0.2**2 + 0.6**2 + 0.4**2 + 0.2**2) / 5)
    no_case = HorizonObjective(horizons=[0.5])  # no event by 0.5, before the test follow-up: both undefined
    no_case.set_reference(np.array([1.0, 2.0, 9.0]), np.ones(3, bool))
    got = no_case.score(rows)
    assert math.isnan(got["auc_0.5"]) and math.isnan(got["auc_mean"]) and math.isnan(got["brier_0.5"])
    with pytest.raises(RuntimeError, match="fit_reference"):
        HorizonObjective(horizons=[5]).score(rows)


def test_a_horizon_past_the_training_follow_up_is_nan_and_recorded() -> None:
    """Training followed up to 7: at 8 the censoring weights are undefined (scikit-survival refuses), so auc_8 and
    brier_8 are NaN and the metrics say why; horizon 5 is still scored."""
    rows = {
        "index": np.arange(6),
        "probs": np.array([[0.8, 0.9], [0.4, 0.5], [0.9, 0.9], [0.4, 0.6], [0.2, 0.3], [0.1, 0.2]]),
        "time": np.array([1.0, 4.0, 3.0, 6.0, 7.5, 9.0]),
        "event": np.array([True, True, False, False, True, False]),
    }
    objective = HorizonObjective(horizons=[5, 8])
    objective.set_reference(np.array([1.0, 2.0, 4.0, 7.0]), np.array([True, False, True, True]))
    got = objective.score(rows)
    assert math.isnan(got["auc_8"]) and math.isnan(got["brier_8"]) and got["auc_mean"] == got["auc_5"]
    assert (got["ipcw_followup"], got["n_horizons_past_followup"]) == (7.0, 1.0)
    with pytest.raises(ValueError):
        train = Surv.from_arrays(np.array([True, False, True, True]), np.array([1.0, 2.0, 4.0, 7.0]))
        cumulative_dynamic_auc(
            train, Surv.from_arrays(rows["event"], rows["time"]), rows["probs"][:, 1], [8.0]
        )


def test_horizon_probabilities_are_monotone_cumulated_interval_hazards() -> None:
    """Logit k is the hazard of (h_{k-1}, h_k]: P(T <= h_k) = 1 − prod_{j<=k}(1 − sigmoid(logit_j)), non-decreasing
    in k for any logits (independent sigmoids per horizon were not: [2, -2] gave 0.88 then 0.12), finite for
    extreme logits, and the loss is the BCE of those probabilities."""
    logits = torch.tensor([[2.0, -2.0, 0.0], [-40.0, -40.0, 40.0], [30.0, -30.0, -30.0]])
    probs = HorizonObjective.probabilities(logits)
    expected = 1 - torch.cumprod(1 - torch.sigmoid(logits.double()), dim=1)
    torch.testing.assert_close(probs.double(), expected, atol=1e-6, rtol=1e-6)
    assert bool((probs.diff(dim=1) >= 0).all()) and torch.sigmoid(logits)[0, 1] < torch.sigmoid(logits)[0, 0]
    objective = HorizonObjective(horizons=[1, 2, 3])
    batch = _batch([(1.5, True), (0.5, False), (5.0, False)])  # known: [0 1 1], [- - -], [0 0 0]
    loss = objective.loss(Prediction(horizon_logits={"primary": logits}), batch)
    target = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    ref = torch.nn.functional.binary_cross_entropy(expected[[0, 2]], target.double())  # float64: exact at ±30
    assert torch.isfinite(loss) and loss.item() == pytest.approx(ref.item(), rel=1e-4)


@pytest.mark.parametrize("horizons", [[], [5, -1], [5, 5.0], [float("inf")]])
def test_bad_horizons_are_one_line_errors(horizons: list[float]) -> None:
    with pytest.raises(ValueError, match="horizon"):
        HorizonObjective(horizons=horizons)


def _cfg(**top: object) -> DictConfig:
    objectives = {
        "os": {"_target_": "survlab.tasks.objectives.SurvivalObjective"},
        "hz": {"_target_": "survlab.tasks.objectives.HorizonObjective", "horizons": [36, 12.5]},
    }
    return OmegaConf.create(
        {
            "model": {
                "net": {"_target_": "torch.nn.Identity"},
                "task": {"_target_": "survlab.tasks.outcome.OutcomeTask", "objectives": objectives},
            },
            **top,
        }
    )


def test_config_check_knows_the_per_horizon_metrics_and_their_direction() -> None:
    names = task_metric_names(_cfg())
    assert [n for n in names if n.startswith("hz/")] == [
        "hz/auc_mean",
        "hz/auc_12.5",
        "hz/brier_12.5",
        "hz/auc_36",
        "hz/brier_36",
    ]
    cfg = _cfg(monitor="val/hz/brier_12.5", monitor_mode="auto", optimized_metric="auto")
    check_config(cfg)
    resolve_auto(cfg)
    assert cfg.monitor_mode == "min" and cfg.optimized_metric == "test/hz/brier_12.5"
    cfg = _cfg(monitor="val/hz/auc_12", monitor_mode="auto")
    with pytest.raises(ConfigError, match="val/hz/auc_12.5"):
        check_config(cfg)


class HorizonNet(SurvivalNet):
    """Linear hazard logits and horizon logits from the clinical columns."""

    modalities = ("clinical",)

    def __init__(self, dims: ModalityDims) -> None:
        super().__init__(dims)
        self.hz = torch.nn.Linear(C, dims.n_bins)
        self.horizon = torch.nn.Linear(C, len(HORIZONS))

    def forward(self, batch) -> Prediction:
        return Prediction(
            hazard_logits=self.hz(batch.clinical), horizon_logits={"primary": self.horizon(batch.clinical)}
        )


def test_a_planted_signal_is_learned_with_survival_and_horizon_objectives(tmp_path) -> None:
    torch.manual_seed(0)
    dm = _DM()  # time = 10 exp(-x_3) + 0.1, every third patient censored
    net = HorizonNet(ModalityDims(clinical_dim=C, n_bins=4))
    task = OutcomeTask(
        net,
        objectives={"os": SurvivalObjective(loss="nll"), "horizon": HorizonObjective(HORIZONS)},
        lr=3e-2,
        scheduler="none",
        max_epochs=15,
    )
    task.fit_references(dm.fitted)
    trainer = L.Trainer(
        max_epochs=15,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=dm)
    assert (
        "val/horizon/auc_mean" in trainer.callback_metrics
        and "val/horizon/brier_10" in trainer.callback_metrics
    )
    trainer.test(task, datamodule=dm)
    m, rows = task.test_metrics, task.test_rows["horizon"]
    assert m["horizon/auc_5"] > 0.8 and m["horizon/auc_10"] > 0.8, m
    assert (np.diff(rows["probs"], axis=1) >= 0).all()  # P(event by 10) >= P(event by 5) for every patient
    assert m["horizon/auc_mean"] == pytest.approx(task.objectives["horizon"].score(rows)["auc_mean"])
    assert len(rows["index"]) == len(dm.parts["test"])
