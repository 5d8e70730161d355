"""Clinical encoder: imputation, standardisation, one-hot fitted on training rows; unseen categories -> zeros."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from survlab.data.cohort.clinical import ClinicalEncoder


def test_fit_on_train_transform_test(tmp_path: Path) -> None:
    train = pd.DataFrame({"age": [40.0, 60.0, np.nan], "sex": ["F", "M", "F"], "site": ["A", None, "A"]})
    enc = ClinicalEncoder(["age", "sex", "site"], categorical=["sex", "site"]).fit(train)
    assert enc.feature_names == ["age", "sex=F", "sex=M", "site=A"]
    x = enc.transform(train)
    assert x.shape == (3, 4) and x.dtype == np.float32
    assert np.isclose(x[2, 0], 0.0)  # NaN -> training median 50 -> z-score 0 (mean 50)
    assert x[1, 3] == 1.0  # missing site -> most frequent "A"
    test = pd.DataFrame({"age": [50.0], "sex": ["X"], "site": ["B"]})
    assert enc.transform(test)[0, 1:].tolist() == [0.0, 0.0, 0.0]  # unseen categories -> all zero
    enc.save(tmp_path / "c.json")
    assert np.array_equal(ClinicalEncoder.load(tmp_path / "c.json").transform(test), enc.transform(test))
