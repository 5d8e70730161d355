"""MM-DLS (survlab.models.mmdls): output shapes, padded slices never change the output, the Cox objectives on its
risks equal lifelines, horizon targets of patients censored before a horizon are masked, and the network learns the
planted subtype, stage and survival signal of the synthetic PET/CT cohort."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import petct_kwargs

from survlab.data.batch import collate
from survlab.data.datamodule import CohortDataModule
from survlab.models.mmdls import MMDLS
from survlab.tasks.objectives import HorizonObjective, SurvivalObjective


@pytest.fixture(scope="module")
def petct_dm(tiny_petct_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> CohortDataModule:
    dm = CohortDataModule(**petct_kwargs(tiny_petct_cohort, tmp_path_factory.mktemp("dm")))
    dm.setup("fit")
    return dm


def _net(dm: CohortDataModule, **kw: object) -> MMDLS:
    torch.manual_seed(0)
    return MMDLS(dm.dims, dim=16, hidden=32, heads=2, task_embed_dim=4, **kw).eval()


def test_outputs_every_head_with_its_shape(petct_dm: CohortDataModule) -> None:
    net = _net(petct_dm)
    batch = next(iter(petct_dm.val_dataloader()))
    pred = net(batch)
    b = len(batch)
    assert pred.class_logits["subtype"].shape == (b, 2) and pred.class_logits["tnm"].shape == (b, 3)
    assert set(pred.endpoint_risk) == {"os", "dfs"} and pred.endpoint_risk["dfs"].shape == (b,)
    assert torch.equal(pred.risk, pred.endpoint_risk["os"])  # the primary endpoint
    assert pred.horizon_logits["dfs"].shape == (b, 3) and torch.equal(
        pred.horizon_logits["primary"], pred.horizon_logits["os"]
    )
    with pytest.raises(
        ValueError, match=r"MMDLS endpoints \['pfs'\] must be survival endpoints of the cohort"
    ):
        _net(petct_dm, endpoints=["pfs"])


@pytest.mark.parametrize("cross_attention", [False, True])
def test_padding_slices_does_not_change_the_outputs(
    petct_dm: CohortDataModule, cross_attention: bool
) -> None:
    net = _net(petct_dm, cross_attention=cross_attention)
    items = [petct_dm.datasets["train"][i] for i in range(5)]
    batch = collate(items)
    longer = replace(batch, extra=dict(batch.extra))
    for kind in ("lesion", "space"):  # 4 more padded slices full of garbage
        x, m = batch.extra[f"ct_{kind}"], batch.extra[f"ct_{kind}_mask"]
        longer.extra[f"ct_{kind}"] = torch.cat([x, torch.rand(x.shape[0], 4, *x.shape[2:]) * 5], dim=1)
        longer.extra[f"ct_{kind}_mask"] = torch.cat([m, torch.zeros(m.shape[0], 4, dtype=torch.bool)], dim=1)
        # and garbage in the padded slots of the short stacks too
        longer.extra[f"ct_{kind}"][:, : x.shape[1]][~m] = 7.0
    with torch.no_grad():
        a, b = net(batch), net(longer)
        alone = net(collate(items[:1]))
    assert (~batch.extra["ct_lesion_mask"]).any()  # the batch holds a short (padded) stack
    for key in ("os", "dfs"):
        torch.testing.assert_close(a.endpoint_risk[key], b.endpoint_risk[key], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.class_logits["tnm"], b.class_logits["tnm"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.risk[:1], alone.risk, rtol=1e-5, atol=1e-5)  # batch-independent


def test_cox_objective_on_the_dfs_risk_equals_lifelines(petct_dm: CohortDataModule) -> None:
    from lifelines import CoxPHFitter

    net = _net(petct_dm)
    batch = collate([petct_dm.datasets["train"][i] for i in range(len(petct_dm.datasets["train"]))])
    with torch.no_grad():
        pred = net(batch)
    risk = pred.endpoint_risk["dfs"].double().numpy()
    risk = (
        risk - risk.mean()
    ) / risk.std()  # an untrained net's risks vary little: scale for lifelines' optimiser
    time, event = batch.endpoint_time["dfs"].double().numpy(), batch.endpoint_event["dfs"].numpy()
    fit = CoxPHFitter().fit(pd.DataFrame({"x": risk, "T": time, "E": event.astype(int)}), "T", "E")
    beta = float(fit.params_["x"])
    pred.endpoint_risk["dfs"] = torch.as_tensor(beta * risk)
    loss = SurvivalObjective(endpoint="dfs", loss="cox").loss(pred, batch)
    assert event.sum() >= 3
    assert loss.item() * event.sum() == pytest.approx(-fit.log_likelihood_, abs=1e-4)


def test_horizon_loss_ignores_patients_censored_before_the_horizon(petct_dm: CohortDataModule) -> None:
    net = _net(petct_dm)
    batch = collate([petct_dm.datasets["train"][i] for i in range(len(petct_dm.datasets["train"]))])
    objective = HorizonObjective([12, 36, 60], endpoint="dfs")
    time, event = batch.endpoint_time["dfs"], batch.endpoint_event["dfs"]
    censored_early = (~event[:, None]) & (time[:, None] <= torch.tensor([12.0, 36.0, 60.0]))
    assert censored_early.any()
    with torch.no_grad():
        pred = net(batch)
    base = objective.loss(pred, batch)
    logits = pred.horizon_logits["dfs"].clone()
    logits[censored_early] = torch.randn(int(censored_early.sum())) * 50  # no label: must not count
    pred.horizon_logits["dfs"] = logits
    assert objective.loss(pred, batch).item() == pytest.approx(base.item(), rel=1e-6)
    logits[~censored_early] += 1.0  # a labelled cell does count
    assert objective.loss(pred, batch).item() != pytest.approx(base.item(), rel=1e-3)


def _train_and_score(tmp: Path, n_patients: int, epochs: int) -> dict[str, float]:
    """Fit MM-DLS with the mmdls objectives on a fresh synthetic PET/CT cohort; test metrics of fold 0."""
    import lightning as L
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from survlab.data.synthetic_petct import PetCtSpec, generate_petct_cohort

    root = generate_petct_cohort(
        tmp / "cohort",
        PetCtSpec(
            n_patients=n_patients, volume_size=48, n_slices=16, lesion_window=24, radiomics_dim=16, seed=5
        ),
    )
    dm = CohortDataModule(
        **petct_kwargs(
            root,
            tmp,
            batch_size=32,
            splits={"dir": str(tmp / "splits"), "folds": 4, "val_fraction": 0.1, "seed": 0},
        )
    )
    dm.setup("fit")
    cfg = OmegaConf.create(
        {"model": OmegaConf.load(Path(__file__).parents[2] / "survlab" / "conf" / "model" / "mmdls.yaml")}
    )
    L.seed_everything(0)
    net = MMDLS(dm.dims, dim=32, hidden=64, heads=2, task_embed_dim=8)
    task = instantiate(cfg.model.task, net=net, _convert_="partial", lr=3e-3, max_epochs=epochs, seed=0)
    task.fit_references(dm)
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    return task.test_metrics


@pytest.mark.slow
def test_learns_the_planted_subtype_stage_and_survival_signal(tmp_path: Path) -> None:
    m = _train_and_score(tmp_path, n_patients=200, epochs=25)
    assert m["subtype/auroc"] > 0.75, m  # chance 0.5
    assert m["tnm/auroc"] > 0.75, m  # macro one-vs-rest, chance 0.5
    assert m["os/cindex"] > 0.6 and m["dfs/cindex"] > 0.6, m  # chance 0.5 (measured 0.67 / 0.72)
    assert m["os_horizons/auc_mean"] > 0.65, m


def test_learns_the_planted_signal_small(tmp_path: Path) -> None:
    """The fast variant: fewer patients and epochs, looser (still clearly above chance) bounds."""
    m = _train_and_score(tmp_path, n_patients=96, epochs=12)
    assert m["subtype/auroc"] > 0.65 and m["tnm/auroc"] > 0.65, m
    assert np.nanmean([m["os/cindex"], m["dfs/cindex"]]) > 0.6, m
