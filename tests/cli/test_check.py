"""`survlab check data=...` (survlab.cli.check + survlab.data.audit): one pass over a cohort in the real layout reports
every injected problem (file, check, count, cases, fix) with exit 1 and no traceback; a clean cohort exits 0 with a
summary whose numbers come from the files; the user's folder is never written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from survlab.cli.check import main
from survlab.data.cohort.table import Cohort
from survlab.data.sources.synthetic import generate_cohort
from survlab.data.sources.synthetic_spec import SyntheticSpec
from tests.helpers.cli import run_survlab

SPEC = SyntheticSpec(n_patients=16, feature_dim=4, n_genes=20, n_pathways=4, patches_per_slide=(2, 4), seed=0)
DATA_YAML = """defaults: [_tcga, _self_]
name: my_cohort
root: {root}
wsi: {{features_dir: features, encoder: synthetic, format: h5, feature_dim: 4}}
genomics: {{expression: expression.csv, signatures: signatures_mcat6.csv}}
clinical: {{columns: [age, sex], categorical: [sex]}}
labels: {{grade: {{classes: [0, 1, 2, 3]}}}}
splits: {{folds: 2}}
num_workers: 0
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_cohort(tmp_path_factory.mktemp("gen") / "cohort", SPEC)


@pytest.fixture
def user(generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's cohort folder (a copy of the synthetic one, in the CLAM/MCAT layout) registered as data=my_cohort
    through a config folder of their own on SURVLAB_CONFIG_PATH."""
    root = tmp_path / "my_cohort"
    shutil.copytree(generated, root)
    (root / ".survlab-cohort.json").unlink()
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "my_cohort.yaml").write_text(DATA_YAML.format(root=root))
    monkeypatch.setenv("SURVLAB_CONFIG_PATH", str(tmp_path / "conf"))
    return root


def _args(tmp_path: Path) -> list[str]:
    return ["data=my_cohort", f"paths.log_dir={tmp_path / 'logs'}"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))
    }


def _slide_of(root: Path, case: str) -> str:
    clin = pd.read_csv(root / "clinical.csv", dtype=str)
    return sorted(clin.loc[clin["case_id"] == case, "slide_id"])[0]


def _inject(root: Path) -> dict[str, list[str]]:
    """Eight problems in four kinds of file; -> check name -> the cases / slides it concerns."""
    clin = pd.read_csv(root / "clinical.csv", dtype=str)
    cases = sorted(clin["case_id"].unique())
    rows = lambda c: clin["case_id"] == c  # noqa: E731
    clin.loc[rows(cases[0]), "survival_months"] = "-3"
    clin.loc[rows(cases[1]), "survival_months"] = "12,5"
    clin.loc[rows(cases[2]), "censorship"] = "2"
    clin.loc[rows(cases[3]), "grade"] = "7"
    clin.loc[rows(cases[4]), "age"] = "unknown"
    clin.to_csv(root / "clinical.csv", index=False)

    expr = pd.read_csv(root / "expression.csv", dtype={"case_id": str})
    dup = expr[expr["case_id"] == cases[5]].assign(case_id=cases[5] + " ")
    expr = pd.concat([expr[expr["case_id"] != cases[6]], dup])
    expr.to_csv(root / "expression.csv", index=False)

    h5 = root / "features" / "synthetic" / "h5_files"
    nan_slide, empty_slide, gone_slide, dim_slide = (_slide_of(root, c) for c in cases[7:11])
    with h5py.File(h5 / f"{nan_slide}.h5", "r+") as f:
        x = f["features"][()]
        x[0, 0] = np.nan
        f["features"][...] = x
    (h5 / f"{empty_slide}.h5").write_bytes(b"")
    (h5 / f"{gone_slide}.h5").unlink()
    with h5py.File(h5 / f"{dim_slide}.h5", "w") as f:
        f.create_dataset("features", data=np.zeros((3, 6), np.float32))
        f.create_dataset("coords", data=np.zeros((3, 2), np.int64))
    return {
        "survival time 'survival_months' not a positive number": cases[:2],
        "'censorship' not 0 or 1": [cases[2]],
        "label 'grade': values not in its classes": [cases[3]],
        "clinical 'age' not numeric": [cases[4]],
        "duplicate case rows": [cases[5]],
        "patients without an expression row": [cases[6]],
        "NaN/Inf features": [nan_slide],
        "empty (0-byte) feature files": [empty_slide],
        "feature files missing": [gone_slide],
        "feature dim differs from wsi.feature_dim": [dim_slide],
    }


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_check_reports_every_injected_problem_in_one_pass(user: Path, tmp_path: Path) -> None:
    expected = _inject(user)
    before = _snapshot(user)
    proc = run_survlab(
        _args(tmp_path),
        module="survlab.cli.check",
        env={"SURVLAB_CONFIG_PATH": str(tmp_path / "conf")},
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    problems = [ln for ln in proc.stdout.split("\nnotes (")[0].splitlines() if ln.startswith("  [")]
    assert f"{len(expected)} problem group(s)" in proc.stdout, out
    by_check = {re.match(r"  \[(.+?)\]", ln).group(1): ln for ln in problems}
    assert sorted(by_check) == sorted(expected), out  # one line per group, no other problem invented
    for check, ids in expected.items():
        line = by_check[check]
        assert all(i in line for i in ids), line
        if len(ids) > 1 or check.startswith(("survival", "'censorship'")):
            assert f"] {len(ids)}x " in line, line
    assert (
        "clinical.csv" in by_check["'censorship' not 0 or 1"]
        and "recode it" in by_check["'censorship' not 0 or 1"]
    )
    assert "expression.csv" in by_check["duplicate case rows"]
    assert "h5_files" in by_check["NaN/Inf features"] and "re-extract" in by_check["NaN/Inf features"]
    assert "feature dim 6 != configured feature_dim 4" in by_check["feature dim differs from wsi.feature_dim"]
    assert _snapshot(user) == before  # read-only: nothing written, touched or added in the user's folder


def test_collected_table_problems_are_the_loader_errors(user: Path) -> None:
    """Collect mode runs the loader's own checks: its first finding is exactly what Cohort.from_csv raises, and
    the later ones are the errors the loader raises once the earlier problems are fixed."""
    _inject(user)
    path = user / "clinical.csv"
    found: list = []
    Cohort.from_csv(path, findings=found)
    assert [f.check for f in found] == [
        "survival time 'survival_months' not a positive number",
        "'censorship' not 0 or 1",
    ]
    with pytest.raises(ValueError) as first:
        Cohort.from_csv(path)
    assert str(first.value) == found[0].message
    assert ": -3 (negative)" in found[0].message and "'12,5' (decimal comma: write 12.5)" in found[0].message
    clin = pd.read_csv(path, dtype=str)
    clin.loc[clin["survival_months"].isin(["-3", "12,5"]), "survival_months"] = "5"
    clin.to_csv(path, index=False)
    with pytest.raises(ValueError) as second:
        Cohort.from_csv(path)
    assert str(second.value) == found[1].message


def test_clean_cohort_exits_0_with_a_summary_from_the_files(
    user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(user)
    assert main(_args(tmp_path)) == 0
    out = capsys.readouterr().out
    clin = pd.read_csv(user / "clinical.csv", dtype={"case_id": str})
    patients = clin.groupby("case_id").first()
    n_events = int((patients["censorship"] == 0).sum())
    assert re.search(
        rf"^OK data=my_cohort: {len(patients)} patients, {len(clin)} slides, {n_events} events; "
        r"modalities: clinical, genomics, wsi",
        out,
        re.M,
    ), out
    assert f"wsi {len(patients)}/{len(patients)} patients" in out and "genomics 16/16 patients" in out
    assert "problem group" not in out
    assert _snapshot(user) == before


def test_table_only_cohort_with_a_bad_fold_count(
    user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A genes + clinical cohort (no slides); 9 folds for 16 patients cannot be split: named with the fix."""
    args = [*_args(tmp_path), "data.wsi=null", "data.slide_col=null", "data.splits.folds=9"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert (
        "[too few patients for the folds] cohort has 16 patients, too few for 9 folds; use fewer folds" in out
    )
    assert "modalities: clinical, genomics" in out and "wsi" not in out.split("modalities:")[1]


def test_events_missing_from_a_fold(user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two events among 16 patients and 4 folds: at least two test folds have no event; the line lists them."""
    clin = pd.read_csv(user / "clinical.csv", dtype={"case_id": str})
    first_two = sorted(clin["case_id"].unique())[:2]
    clin["censorship"] = np.where(clin["case_id"].isin(first_two), 0, 1)
    clin.to_csv(user / "clinical.csv", index=False)
    assert main([*_args(tmp_path), "data.splits.folds=4"]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "[too few events for the folds]" in ln)
    assert "2 event(s) among 16 patients" in line and "test" in line and "use fewer folds" in line


def test_unknown_cohort_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data=no_such_cohort", f"paths.log_dir={tmp_path}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("survlab check: error:") and "no_such_cohort" in err and "\n" not in err


def test_audit_of_table_and_file_mix_ups(generated: Path, tmp_path: Path) -> None:
    """In-process `audit_cohort` (wsi.format=auto, no configured dim): case ids in two letter cases, a slide under two
    patients, outcomes that differ across a patient's slide rows, an .h5 and a .pt of one slide that differ, and a
    slide of another feature dim; each is one finding naming the right cases, and the missing-expression finding
    points at the spelling."""
    from survlab.data.audit import audit_cohort
    from survlab.data.datamodule import CohortDataModule

    root = tmp_path / "mine"
    shutil.copytree(generated, root)
    clin = pd.read_csv(root / "clinical.csv", dtype=str)
    multi = sorted(clin.groupby("case_id").filter(lambda g: len(g) > 1)["case_id"].unique())
    twin_case, conflict_case, owner_case = multi[:3]
    lower = twin_case.lower()
    clin.loc[clin.index[clin["case_id"] == twin_case][0], "case_id"] = lower
    clin.loc[clin.index[clin["case_id"] == conflict_case][0], "survival_months"] = "99"
    stolen = sorted(clin.loc[clin["case_id"] == owner_case, "slide_id"])[0]
    clin.loc[clin.index[clin["case_id"] == multi[3]][0], "slide_id"] = stolen
    clin.to_csv(root / "clinical.csv", index=False)
    base = root / "features" / "synthetic"
    others = sorted(set(clin["case_id"]) - set(multi[:4]) - {lower})
    stale, wide = _slide_of(root, others[0]), _slide_of(root, others[1])
    torch = pytest.importorskip("torch")
    torch.save(
        torch.ones(torch.load(base / "pt_files" / f"{stale}.pt").shape), base / "pt_files" / f"{stale}.pt"
    )
    x = np.ones((3, 6), np.float32)
    torch.save(torch.from_numpy(x), base / "pt_files" / f"{wide}.pt")
    with h5py.File(base / "h5_files" / f"{wide}.h5", "w") as f:
        f.create_dataset("features", data=x)
        f.create_dataset("coords", data=np.zeros((3, 2), np.int64))

    dm = CohortDataModule(
        name="mine",
        root=str(root),
        wsi={"encoder": "synthetic"},
        genomics={},
        clinical=None,
        splits={"folds": 2},
        split_root=str(tmp_path / "splits"),
    )
    result = audit_cohort(dm)
    got = {f.check: f for f in result.findings}
    assert sorted(got) == sorted(
        [
            "conflicting outcomes (os)",
            "slide listed under two patients",
            "case ids differing only in letter case",
            "patients without an expression row",
            ".h5 and .pt of a slide differ",
            "feature dims differ across slides",
        ]
    ), [f.message for f in result.findings]
    assert got["conflicting outcomes (os)"].cases == (conflict_case,)
    assert got["slide listed under two patients"].cases == (stolen,)
    assert set(got["case ids differing only in letter case"].cases) == {twin_case, lower}
    assert got["patients without an expression row"].cases == (lower,)
    assert (
        f"(e.g. {lower!r} is spelled {twin_case!r} there)"
        in got["patients without an expression row"].message
    )
    assert got[".h5 and .pt of a slide differ"].cases == (stale,)
    assert got["feature dims differ across slides"].cases == (wide,)
    assert "feature dim(s) [6] but" in got["feature dims differ across slides"].message
    assert not (tmp_path / "splits").exists()  # a check writes no split files


def test_multiscale_slide_missing_a_scale_is_a_note_a_patient_left_without_slides_a_problem(
    tmp_path: Path,
) -> None:
    """Multi-scale (x5/x10/x20): a slide without its x10 bag is dropped in training (a note); a patient none of whose
    slides has an x20 bag cannot be trained on (a problem naming the patient)."""
    from survlab.data.audit import audit_cohort
    from survlab.data.datamodule import CohortDataModule

    spec = SyntheticSpec(
        n_patients=8,
        feature_dim=4,
        n_genes=20,
        n_pathways=4,
        patches_per_slide=(16, 20),
        multiscale=True,
        seed=1,
    )
    root = generate_cohort(tmp_path / "ms", spec)
    clin = pd.read_csv(root / "clinical.csv", dtype=str)
    per_case = clin.groupby("case_id")["slide_id"].agg(sorted)
    partial = next(c for c, ss in per_case.items() if len(ss) > 1)
    lost = next(c for c in sorted(per_case.index) if c != partial)
    base = root / "features" / "synthetic"
    for scale, slides in (("x10", per_case[partial][:1]), ("x20", per_case[lost])):
        for s in slides:
            (base / scale / "h5_files" / f"{s}.h5").unlink()
            (base / scale / "pt_files" / f"{s}.pt").unlink()
    dm = CohortDataModule(
        name="ms",
        root=str(root),
        wsi={"encoder": "synthetic", "scales": ["x5", "x10", "x20"]},
        genomics=None,
        clinical=None,
        splits={"folds": 2},
        split_root=str(tmp_path / "splits"),
    )
    result = audit_cohort(dm)
    assert [(f.check, f.cases) for f in result.findings] == [
        ("patients without a slide at every scale", (lost,))
    ], [f.message for f in result.findings]
    notes = {(f.file.rsplit("/", 1)[-1], f.check): f.cases for f in result.notes}
    assert notes[("x10", "feature files missing")] == (per_case[partial][0],)
    assert notes[("x20", "feature files missing")] == tuple(per_case[lost])
    assert (
        result.summary["coverage"]["wsi"]
        == f"{len(per_case) - 1}/{len(per_case)} patients with readable features"
    )


def test_petct_cohort_problems(tiny_petct_cohort: Path, tmp_path: Path) -> None:
    """PET/CT (PNG stacks, imaging.missing=error): the patients without images, a case whose radiomics row is gone
    and an unreadable PNG slice are each named with the right cases; nothing is cached."""
    from survlab.data.audit import audit_cohort
    from survlab.data.datamodule import CohortDataModule
    from tests.conftest import petct_kwargs

    root = tmp_path / "petct"
    shutil.copytree(tiny_petct_cohort, root)
    cases = sorted(p.name for p in (root / "images").iterdir())
    broken, no_row = cases[0], cases[1]
    slice_png = sorted((root / "images" / broken / "lesion").glob("*.png"))[0]
    slice_png.write_bytes(b"not a png")
    rad = pd.read_csv(root / "radiomics.csv", dtype={"case_id": str})
    rad[rad["case_id"] != no_row].to_csv(root / "radiomics.csv", index=False)
    clin = pd.read_csv(root / "clinical.csv", dtype={"case_id": str})
    no_images = sorted(set(clin["case_id"]) - set(cases))
    dm = CohortDataModule(**petct_kwargs(root, tmp_path, imaging={"missing": "error"}, modalities=None))
    result = audit_cohort(dm)
    got = {f.check: f for f in result.findings}
    assert sorted(got) == ["patients without imaging", "unreadable files"], [
        f.message for f in result.findings
    ]
    assert set(got["patients without imaging"].cases) == {no_row, *no_images}
    assert "a radiomics row" in got["patients without imaging"].message
    assert got["unreadable files"].cases == (broken,)
    assert f"{slice_png}: cannot read as a PNG image" in got["unreadable files"].message
    assert not (tmp_path / "cache").exists()


def test_prompts_that_miss_a_class(user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Text prompts for label grade (classes 0-3) that give sentences for 0-2 only: one line naming the file, the
    missing class and the fix; the rest of the cohort is clean."""
    prompts = tmp_path / "grade_prompts.json"
    prompts.write_text('{"0": ["low grade"], "1": ["grade one"], "2": ["grade two"]}')
    assert main([*_args(tmp_path), f"+data.prompts.grade={prompts}"]) == 1
    out = capsys.readouterr().out
    lines = [ln for ln in out.split("\nnotes (")[0].splitlines() if ln.startswith("  [")]
    assert len(lines) == 1 and lines[0].startswith("  [prompts do not match label 'grade'] prompts file "), (
        out
    )
    assert (
        str(prompts) in lines[0] and "missing ['3']" in lines[0] and "give sentences for exactly" in lines[0]
    )


def test_covariates_in_their_own_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """`clinical.table` (outcomes and covariates in two CSVs): the check joins them as the data module does; a
    patient without a covariate row is reported, naming the covariate file and the case."""
    from tests.helpers.table_cohort import write_table_cohort, write_user_config

    root = write_table_cohort(tmp_path / "data" / "three", n=40, three_files=True)
    write_user_config(tmp_path / "conf", "three", root, three_files=True)
    monkeypatch.setenv("SURVLAB_CONFIG_PATH", str(tmp_path / "conf"))
    logs = f"paths.log_dir={tmp_path / 'logs'}"
    assert main(["data=three", logs]) == 0
    assert "40 patients" in capsys.readouterr().out
    covariates = pd.read_csv(root / "clinical.csv", dtype={"case_id": str})
    dropped = sorted(covariates["case_id"])[3]
    covariates[covariates["case_id"] != dropped].to_csv(root / "clinical.csv", index=False)
    assert main(["data=three", logs]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "covariate table" in x)
    assert str(root / "clinical.csv") in line and dropped in line and "no row for 1 cohort patient" in line


def test_small_folds_are_named_with_patients_and_events_per_part(
    user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """16 patients in 2 folds: every fold validates on a handful of patients; the note gives each part's patients /
    events (counted here from the clinical file and the folds) and the fixes; selection=last drops the val complaint."""
    from survlab.data.cohort.split_draw import make_splits

    assert main(_args(tmp_path)) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "[folds too small to select on]" in ln)
    clin = pd.read_csv(user / "clinical.csv", dtype={"case_id": str}).groupby("case_id").first()
    event = (clin["censorship"] == 0).to_dict()
    frame = make_splits(
        list(clin.index), clin["survival_months"].to_numpy(float), np.array(list(event.values())), 2, 0.15, 0
    )[0]
    n = {p: list(frame.loc[frame["split"] == p, "case_id"]) for p in ("train", "val", "test")}
    e = {p: sum(event[c] for c in ids) for p, ids in n.items()}
    assert (
        f"2 of 2 fold(s) are small (fold 0: train {len(n['train'])} patients / {e['train']} events, "
        f"val {len(n['val'])} / {e['val']}, test {len(n['test'])} / {e['test']}: the checkpoint is picked on "
        f"{len(n['val'])} validation patients with {e['val']} events (selection=best_val needs >= 20 patients and "
        f">= 10 events)"
    ) in line
    assert line.endswith(
        "use fewer folds (data.splits.folds, now 2), a larger data.splits.val_fraction or selection=last)"
    )
    assert main([*_args(tmp_path), "selection=last"]) == 0
    assert (
        "[folds too small to select on]" not in capsys.readouterr().out
    )  # >= 2 test events in each fold here


def _info(out: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index("what the config reads:") + 1
    return [ln.strip() for ln in lines[start:] if ln.startswith("  ")]


def test_check_says_what_the_config_reads_and_leaves_unread(
    user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Planted: two extra clinical columns, a signatures group with genes absent from expression.csv. The lines name
    every column the config does not read, the signatures file and its gene coverage per group (counted here)."""
    clin = pd.read_csv(user / "clinical.csv", dtype=str)
    clin["smoking"], clin["ecog"] = "never", "1"
    clin.to_csv(user / "clinical.csv", index=False)
    sig = pd.read_csv(user / "signatures_mcat6.csv", dtype=str)
    sig.loc[len(sig), sig.columns[0]] = (
        "NOT_A_GENE"  # one more gene in the first group, absent from the table
    )
    sig.to_csv(user / "signatures_mcat6.csv", index=False)
    assert main(_args(tmp_path)) == 0
    info = _info(capsys.readouterr().out)
    used = {"case_id", "slide_id", "survival_months", "censorship", "grade", "age", "sex"}
    unused = [c for c in clin.columns if c not in used]
    assert "smoking" in unused and "ecog" in unused
    assert info[0] == (
        f"{user / 'clinical.csv'}: {len(unused)} column(s) not used by data=my_cohort: {', '.join(unused)}; to use "
        f"them add covariates under data.clinical.columns (+ clinical.categorical), labels under data.labels, "
        f"per-group metrics under data.subgroups"
    )
    genes = set(pd.read_csv(user / "expression.csv", nrows=0).columns)
    per = {g: [s for s in sig[g].dropna()] for g in sig.columns}
    kept = {g: sum(s in genes for s in dict.fromkeys(v)) for g, v in per.items()}
    total = {g: len(dict.fromkeys(v)) for g, v in per.items()}
    assert "NOT_A_GENE" in per[sig.columns[0]] and kept[sig.columns[0]] < total[sig.columns[0]]
    assert info[1] == (
        f"signatures {user / 'signatures_mcat6.csv'}: {len(per)} group(s), {sum(kept.values())}/{sum(total.values())} "
        f"genes found in {user / 'expression.csv'} ({', '.join(f'{g} {kept[g]}/{total[g]}' for g in per)})"
    )


def test_check_flags_an_unlogged_expression_table_and_a_logged_one_under_log1p(
    user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The synthetic table holds raw values (max > 100): with log1p false it is flagged with its max and the fix;
    log1p=true silences it; a log-transformed table is clean with log1p false and flagged (negatives) with true."""
    expr = pd.read_csv(user / "expression.csv", dtype={"case_id": str}).set_index("case_id")
    top = float(np.nanmax(expr.to_numpy(float)))
    assert top > 100
    path = user / "expression.csv"
    assert main(_args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert (
        f"[expression scale vs log1p] {path}: values up to {top:.4g} (median "
        f"{float(np.nanmedian(expr.to_numpy(float))):.3g}) look unlogged (raw counts / TPM) but data.genomics.log1p "
        f"is false; set data.genomics.log1p=true, or log-transform the table"
    ) in out
    assert main([*_args(tmp_path), "data.genomics.log1p=true"]) == 0
    assert "expression scale" not in capsys.readouterr().out
    logged = np.log2(expr + 0.5)  # log2(x + 0.5): some values below 0
    logged.reset_index().to_csv(path, index=False)
    assert main(_args(tmp_path)) == 0
    assert "expression scale" not in capsys.readouterr().out
    assert main([*_args(tmp_path), "data.genomics.log1p=true"]) == 0
    n_neg = int((logged.to_numpy() < 0).sum())
    assert (
        f"{path}: {n_neg} negative value(s) (min {float(logged.to_numpy().min()):.4g}) look already logged"
        in (capsys.readouterr().out)
    )


def test_training_log_names_signatures_unused_columns_and_scale(
    make_datamodule, caplog: pytest.LogCaptureFixture
) -> None:
    """The same facts in the training log: one info line each for the signatures / unused columns, a warning for
    the scale (the tiny cohort's table is raw with log1p false here)."""
    import logging

    with caplog.at_level(logging.INFO, logger="survlab.data"):
        dm = make_datamodule(genomics={"log1p": False, "signatures": "signatures_mcat6.csv"})
    text = [r.getMessage() for r in caplog.records]
    assert any(t.startswith(f"genomics: signatures {dm.root}") and "genes found in" in t for t in text), text
    assert any(t.startswith(f"{dm.clinical_csv}: ") and "not used by data=" in t for t in text), text
    assert any(t.startswith("genomics: ") and "look unlogged" in t for t in text), text
