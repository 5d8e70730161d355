"""`survlab cut`: a segmentor that predicts no lesion anywhere stops the cut with a one-line error (MM-DLS on such
a stack cohort used to fail later with "after dropping 240 patient(s) ... NO events"; seen on the recipe's fold 2,
experiments/mmdls_synthetic/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from survlab.cli import cut


def _report(n: int, empty: int) -> dict[str, Any]:
    cases = {f"PCT{i:04d}": {} for i in range(n)}
    return {"cases": cases, "empty_lesion": list(cases)[:empty], "mean_dice_lesion_vs_cohort_mask": 0.0}


def test_cut_without_any_predicted_lesion_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cut, "cut_cohort", lambda *a: _report(5, 5))
    with pytest.raises(SystemExit) as info:
        cut.main([f"run={tmp_path / 'seg'}", f"out={tmp_path / 'cut'}"])
    message = str(info.value)
    assert message.startswith("survlab: error: the segmentor of ") and "\n" not in message
    assert "no lesion in any of the 5 volume(s)" in message and "retrain it" in message
    monkeypatch.setattr(cut, "cut_cohort", lambda *a: _report(5, 4))  # one stack cut: fine
    cut.main([f"run={tmp_path / 'seg'}", f"out={tmp_path / 'cut'}"])
    assert "cut stacks of 1 / 5 case(s)" in capsys.readouterr().out
