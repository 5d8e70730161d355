"""External validation of a cohort whose patients lack a modality (survlab.data.external_absence): the EXTERNAL
cohort's data.missing decides; keep scores every patient with the absent modality marked as in training (refused
in one line when the model cannot take it), drop scores the complete patients and counts the others; nothing is
refitted on the external patients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_SPEC, datamodule_kwargs
from sklearn.preprocessing import StandardScaler

from survlab.data.absence import AbsentModalityError
from survlab.data.batch import collate
from survlab.data.datamodule import CohortDataModule
from survlab.data.external import setup_external
from survlab.data.external_absence import dropped_card, dropped_sentence
from survlab.data.fitted import FoldPreprocessing
from survlab.data.sources.synthetic import SyntheticSpec, generate_cohort

SPEC: dict[str, Any] = {**TINY_SPEC, "missing_genomics": 0.25}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(training cohort, external cohort): two generator seeds, each with 25% of patients lacking genomics (10% of
    the training cohort's patients lack slides)."""
    base = tmp_path_factory.mktemp("extmiss")
    return (
        generate_cohort(base / "internal", SyntheticSpec(**{**SPEC, "missing_wsi": 0.1})),
        generate_cohort(base / "external", SyntheticSpec(**{**SPEC, "seed": 7})),
    )


@pytest.fixture(scope="module")
def trained(cohorts: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> CohortDataModule:
    dm = CohortDataModule(**datamodule_kwargs(cohorts[0], tmp_path_factory.mktemp("s"), missing="keep"))
    dm.setup("fit")
    return dm


def _lacking(root: Path) -> list[str]:
    return list(json.loads((root / "oracle.json").read_text())["missing"]["genomics"]["patients"])


def _external(root: Path, tmp: Path, missing: str) -> CohortDataModule:
    return CohortDataModule(**datamodule_kwargs(root, tmp / "splits", name="other", missing=missing))


def _saved(trained: CohortDataModule, tmp: Path) -> FoldPreprocessing:
    """The run's preprocessing.json written and read back (what `survlab eval` applies)."""
    path = tmp / "preprocessing.json"
    path.write_text(json.dumps(trained.fitted.to_json()))
    return FoldPreprocessing.from_json(json.loads(path.read_text()))


def test_keep_scores_every_external_patient_marked_absent_with_the_runs_scaler(
    cohorts: tuple[Path, Path], trained: CohortDataModule, tmp_path: Path
) -> None:
    ext_root = cohorts[1]
    lacking = set(_lacking(ext_root))
    assert len(lacking) == 10
    ext = _external(ext_root, tmp_path, "keep")
    setup_external(ext, _saved(trained, tmp_path), cannot_take={})
    ds = ext.datasets["test"]
    assert len(ds) == 40 and ext.absent == {"genomics": sorted(lacking, key=ext.cohort.case_ids.index)}
    assert ext.availability == {c: "wsi" if c in lacking else "wsi+genomics" for c in ext.cohort.case_ids}
    items = [ds[i] for i in range(len(ds))]
    assert all(it.present == {"wsi": True, "genomics": it.case_id not in lacking} for it in items)
    assert all(all(g.eq(0).all() for g in it.genomics) for it in items if it.case_id in lacking)
    # nothing refitted: the external profile is scaled with the TRAINING patients' mean / sd (preprocessing.json),
    # which equal sklearn's StandardScaler on the training patients that have a profile
    state = json.loads((tmp_path / "preprocessing.json").read_text())
    groups = state["genomics"]["groups"]["genes"]
    genes = list(dict.fromkeys(g for grp in groups for g in grp))  # the union, in first-listed order
    train_expr = pd.read_csv(cohorts[0] / "expression.csv", index_col=0)
    have = [c for c in trained.split.train if c in train_expr.index]
    ref = StandardScaler().fit(train_expr.loc[have, genes].to_numpy(float))
    np.testing.assert_allclose(state["genomics"]["scaler"]["shift"], ref.mean_, rtol=1e-6)  # float32 table
    ext_expr = pd.read_csv(ext_root / "expression.csv", index_col=0)
    case = next(it for it in items if it.case_id not in lacking)
    got = np.concatenate([np.asarray(g) for g in case.genomics])
    scaled = dict(
        zip(genes, ref.transform(ext_expr.loc[[case.case_id], genes].to_numpy(float))[0], strict=True)
    )
    want = [scaled[g] for grp in groups for g in grp]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert ext.fitted.gene_scaler.shift.tolist() == state["genomics"]["scaler"]["shift"]


def test_absent_patients_predictions_do_not_depend_on_the_placeholder(
    cohorts: tuple[Path, Path], trained: CohortDataModule, tmp_path: Path
) -> None:
    from survlab.models.base import risk_score
    from survlab.models.late_fusion import LateFusion

    ext = _external(cohorts[1], tmp_path, "keep")
    setup_external(ext, trained.fitted, cannot_take={})
    ds = ext.datasets["test"]
    batch = collate([ds[i] for i in range(len(ds))])
    torch.manual_seed(0)
    net = LateFusion(ext.dims, wsi_hidden=16, genomic_hidden=[16], fusion_dim=16).eval()
    absent = ~batch.present["genomics"]
    assert int(absent.sum()) == 10
    with torch.no_grad():
        before = risk_score(net(batch))
        noise = [torch.randn_like(g) * 5 for g in batch.genomics]
        batch.genomics = [
            torch.where(absent[:, None], n, g) for n, g in zip(noise, batch.genomics, strict=True)
        ]
        after = risk_score(net(batch))
        assert torch.equal(before, after)  # bit for bit: the stand-in replaces the placeholder's embedding
        batch.genomics = [
            torch.where(absent[:, None], g, n) for n, g in zip(noise, batch.genomics, strict=True)
        ]
        moved = risk_score(net(batch))
    assert not torch.allclose(
        moved[~absent], before[~absent]
    )  # a present profile does move its patient's risk


def test_keep_is_refused_in_one_line_naming_who_lacks_what_and_the_fix(
    cohorts: tuple[Path, Path], trained: CohortDataModule, tmp_path: Path
) -> None:
    ext = _external(cohorts[1], tmp_path, "keep")
    why = "model=snn of run=r cannot take an absent genomics (its network SNN has no stand-in for it)"
    with pytest.raises(AbsentModalityError) as err:
        setup_external(ext, trained.fitted, cannot_take={"genomics": why})
    first = _lacking(cohorts[1])
    msg = str(err.value)
    assert "\n" not in msg and err.value.modality == "genomics"
    assert msg.startswith(f"external data=other: 10 lack genomics (e.g. {min(first)}, ")
    assert f"of its 40 patients, but {why}; score only the 30 patients with every modality" in msg
    assert "data.missing=drop" in msg and not ext.datasets  # refused before any dataset / prediction
    assert "in a training run 'external_data_overrides={missing:drop}'" in msg  # the fix of external_data=


def test_drop_scores_the_complete_patients_and_the_card_counts_the_others(
    cohorts: tuple[Path, Path], trained: CohortDataModule, tmp_path: Path
) -> None:
    ext = _external(cohorts[1], tmp_path, "drop")
    setup_external(ext, trained.fitted, cannot_take={"genomics": "never asked under drop"})
    lacking = set(_lacking(cohorts[1]))
    assert set(ext.split.test) == set(ext.full_cohort.case_ids) - lacking and len(ext.datasets["test"]) == 30
    assert all(ext.datasets["test"][i].present == {} for i in range(30))  # nothing marked: nobody absent
    card = dropped_card(ext, len(ext.full_cohort.case_ids))
    assert card == {
        "missing": "drop",
        "n_patients_before": 40,
        "n_dropped": 10,
        "per_modality": {"genomics": 10},
    }
    assert dropped_sentence(card) == (
        "Scored on the 30 patients with every modality the model reads only: 10 of 40 left out for lacking one "
        "(data.missing=drop; genomics 10)."
    )


def test_error_names_the_missing_option(
    cohorts: tuple[Path, Path], trained: CohortDataModule, tmp_path: Path
) -> None:
    ext = _external(cohorts[1], tmp_path, "error")
    with pytest.raises(Exception, match=r"expression table lacks 10 cohort patient\(s\).*data\.missing=drop"):
        setup_external(ext, trained.fitted, cannot_take={})


def test_the_training_patients_of_each_stand_in_are_recorded(trained: CohortDataModule) -> None:
    """absent_in_training (preprocessing.json): per modality, the training patients without it (genomics: left out
    of the scaler's fit; wsi: trained the WSI stand-in) — what decides whether an external absent patient is taken."""
    oracle = json.loads((Path(trained.root) / "oracle.json").read_text())["missing"]
    train = set(trained.split.train)
    want = {m: len(set(oracle[m]["patients"]) & train) for m in ("genomics", "wsi")}
    assert min(want.values()) > 0 and trained.fitted.absent_in_training == want
    assert FoldPreprocessing.from_json(trained.fitted.to_json()).absent_in_training == want
