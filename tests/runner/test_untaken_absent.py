"""Which absent modalities a trained model can score on an external cohort (survlab.runner.modalities): its network
must have a stand-in (`accepts_absent`) AND the stand-in must have been trained (absent training patients, or
modality dropout)."""

from __future__ import annotations

from omegaconf import OmegaConf

from survlab.models.late_fusion import LateFusion
from survlab.models.snn import SNN
from survlab.runner.modalities import model_cannot_take, untaken_absent


def test_a_stand_in_must_exist_and_have_been_trained() -> None:
    never = untaken_absent(LateFusion, 0.0, {}, "model=late_fusion of run=r")
    assert never["genomics"] == (
        "model=late_fusion of run=r was trained on no patient without genomics and model.net.modality_dropout=0, so "
        "its absent-genomics stand-in is untrained"
    )
    assert set(never) == {"wsi", "genomics", "pet"}  # LateFusion has no PET stand-in at all
    assert (
        never["pet"]
        == "model=late_fusion of run=r cannot take an absent pet (its network LateFusion has no stand-in for it)"
    )
    assert set(untaken_absent(LateFusion, 0.0, {"genomics": 7}, "m")) == {"wsi", "pet"}
    assert set(untaken_absent(LateFusion, 0.2, {}, "m")) == {"pet"}  # modality dropout trains both stand-ins
    assert untaken_absent(SNN, 0.0, {"genomics": 7}, "model=snn")["genomics"].startswith(
        "model=snn cannot take an absent genomics (its network SNN has no stand-in"
    )


def test_the_runs_config_names_the_model_and_its_dropout() -> None:
    cfg = OmegaConf.create(
        {
            "model": {
                "name": "late_fusion",
                "net": {"_target_": "survlab.models.late_fusion.LateFusion", "modality_dropout": 0.3},
            }
        }
    )
    assert model_cannot_take(cfg, {}, "run=/r") == {
        "pet": "model=late_fusion of run=/r cannot take an absent pet (its network LateFusion has no stand-in for it)"
    }
