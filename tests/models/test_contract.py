"""One model contract (issue 22 item 7): `OutcomeNet.forward_features` + heads from one shared constructor.

Every outcome network gives, on the same seed, the outputs it gave before the contract (numbers recorded with the
code of commit 22edbe6); checkpoints with the old head parameter names still load; every fusion trunk and table
network takes a classification head and further survival endpoints; a table network learns a planted class signal;
bad head settings are one-line errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score

from survlab.data.batch import Batch, PatientItem, collate
from survlab.data.sources.examples import random_batch
from survlab.models.abmil import ABMIL
from survlab.models.base import Denoiser, Features, ModalityDims, OutcomeNet, Segmentor
from survlab.models.clinical_mlp import ClinicalMLP
from survlab.models.coxmlp import CoxMLP
from survlab.models.crossfusion import CrossFusion
from survlab.models.ggmf import GGMF
from survlab.models.late_fusion import LateFusion
from survlab.models.max_mil import MaxMIL
from survlab.models.mcat import MCAT
from survlab.models.mcat_gr import MCATGR
from survlab.models.mean_mil import MeanMIL
from survlab.models.mmdls_seg import LungLesionSegmentor
from survlab.models.pathgen import PathGenDenoiser
from survlab.models.snn import SNN

DIMS = ModalityDims(
    wsi_dim=6,
    genomic_sizes=(4, 5, 3),
    clinical_dim=3,
    n_bins=4,
    n_classes={"grade": 3},
    scale_dims={"x5": 6, "x10": 6, "x20": 6},
)
TWO_ENDPOINTS = ModalityDims(
    **{**DIMS.__dict__, "n_classes": {"grade": 3, "subtype": 2}, "endpoints": ("os", "dfs")}
)

NETS: dict[str, Callable[..., OutcomeNet]] = {
    "abmil": lambda dims=DIMS, **kw: ABMIL(dims, hidden_dim=8, **kw),
    "clinical_mlp": lambda dims=DIMS, **kw: ClinicalMLP(dims, hidden=(8,), **kw),
    "coxmlp": lambda dims=DIMS, **kw: CoxMLP(dims, hidden=(8,), **kw),
    "snn": lambda dims=DIMS, **kw: SNN(dims, hidden=(8, 8), **kw),
    "late_fusion": lambda dims=DIMS, **kw: LateFusion(
        dims, wsi_hidden=8, genomic_hidden=(8,), fusion="bilinear", fusion_dim=8, gate_dim=4, **kw
    ),
    "ggmf": lambda dims=DIMS, **kw: GGMF(dims, dim=8, heads=2, **kw),
    "ggmf_risk": lambda dims=DIMS, **kw: GGMF(dims, dim=8, heads=2, output="risk", **kw),
    "mcat": lambda dims=DIMS, **kw: MCAT(dims, dim=8, heads=2, ff_dim=16, **kw),
    "mcat_gr": lambda dims=DIMS, **kw: MCATGR(dims, dim=8, heads=2, ff_dim=16, **kw),
    "crossfusion": lambda dims=DIMS, **kw: CrossFusion(dims, dim=8, heads=2, mlp_dim=16, **kw),
}

# hazard logits (or Cox risk) then class logits, at torch.manual_seed(0), eval mode, random_batch(DIMS, (5, 4), seed=1),
# from the networks as they were before the contract (commit 22edbe6)
BEFORE = {
    "abmil": [-0.117899, 0.169653, 0.200365, -0.145672, -0.12789, 0.180091, 0.177929, -0.147794],
    "clinical_mlp": [-0.001857, -0.273895, 0.138452, 0.036359, 0.212049, 0.197322, -0.053732, 0.037185],
    "coxmlp": [-0.337862, -0.044905],
    "snn": [0.174335, 0.093541, -0.237795, 0.182296, -0.496597, -0.156974, -0.280602, -0.021365],
    "late_fusion": [-0.148124, -0.120109, -0.269691, -0.036846, -0.148085, -0.119861, -0.268469, -0.038489],
    "ggmf": [-1.04512, -0.772245, 0.433214, -0.673726, -0.818427, -0.753439, 0.45048, -0.828362],
    "ggmf_risk": [-1.221416, -0.994724],
    "mcat": [-0.151644, 0.203617, -0.195289, 0.202883, -0.183732, 0.244253, -0.182985, 0.203692],
    "mcat_gr": [-0.151644, 0.203617, -0.195289, 0.202883, -0.183732, 0.244253, -0.182985, 0.203692]
    + [-0.120194, 0.375081, -0.045962, -0.160729, 0.513583, -0.152441],
    "crossfusion": [0.533754, 0.211394, -0.215759, 0.151325, 0.523024, 0.217638, -0.207618, 0.135062],
}


def _outputs(net: torch.nn.Module) -> list[float]:
    with torch.no_grad():
        pred = net.eval()(random_batch(DIMS, bag_sizes=(5, 4), seed=1))
    main = pred.hazard_logits if pred.hazard_logits is not None else pred.risk
    return [float(v) for v in main.flatten()] + [
        float(v) for _, logits in sorted(pred.class_logits.items()) for v in logits.flatten()
    ]


@pytest.mark.parametrize("name", list(NETS))
def test_same_outputs_as_before_the_contract_for_the_same_seed(name: str) -> None:
    torch.manual_seed(0)
    np.testing.assert_allclose(_outputs(NETS[name]()), BEFORE[name], atol=2e-6, rtol=0)


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("ggmf", "head.weight", "head.linear.weight"),
        ("crossfusion", "head.weight", "head.linear.weight"),
        ("mcat", "survival_head.weight", "head.linear.weight"),
    ],
)
def test_checkpoints_with_the_old_head_names_still_load(name: str, old: str, new: str) -> None:
    torch.manual_seed(0)
    trained = NETS[name]()
    state = {
        k.replace(new.rpartition(".")[0], old.rpartition(".")[0], 1)
        if k.startswith(new.rpartition(".")[0])
        else k: v
        for k, v in trained.state_dict().items()
    }
    assert old in state and new not in state  # as a checkpoint written before the contract
    torch.manual_seed(1)
    fresh = NETS[name]()
    assert not torch.equal(fresh.state_dict()[new], trained.state_dict()[new])
    fresh.load_state_dict(state)  # strict: every key matched after the rename
    assert _outputs(fresh) == _outputs(trained)
    # nested inside a task module (prefix "net."), as Lightning loads a checkpoint
    holder, again = torch.nn.Module(), NETS[name]()
    holder.net = again
    holder.load_state_dict({f"net.{k}": v for k, v in state.items()})
    assert _outputs(again) == _outputs(trained)


NETS["mean_mil"] = lambda dims=DIMS, **kw: MeanMIL(dims, hidden_dim=8, **kw)
NETS["max_mil"] = lambda dims=DIMS, **kw: MaxMIL(dims, hidden_dim=8, **kw)


@pytest.mark.parametrize("name", [n for n in NETS if n not in ("ggmf_risk", "mcat_gr")])
def test_every_trunk_takes_a_class_head_and_further_endpoints(name: str) -> None:
    """The same trunk: classification only, then survival + a class head + a DFS head."""
    torch.manual_seed(0)
    cls_only = NETS[name](TWO_ENDPOINTS, targets=["subtype"], survival=False).eval()
    batch = random_batch(TWO_ENDPOINTS, bag_sizes=(5, 4), seed=1)
    pred = cls_only(batch)
    assert pred.hazard_logits is None and pred.risk is None and cls_only.head is None
    assert pred.class_logits["subtype"].shape == (2, 2) and cls_only.targets == ("subtype",)
    assert pred.embedding is not None and pred.embedding.shape[0] == 2

    multi = NETS[name](
        TWO_ENDPOINTS, targets=["grade"], survival=True, endpoints=["dfs"], output="hazards"
    ).eval()
    pred = multi(batch)
    assert pred.hazard_logits.shape == (2, 4) and pred.endpoint_hazard_logits["dfs"].shape == (2, 4)
    assert pred.class_logits["grade"].shape == (2, 3)
    # the DFS head is its own layer on the same embedding (MaxMIL applies its heads per patch, then pools)
    h = multi.forward_features(batch).embedding
    if name != "max_mil":
        torch.testing.assert_close(pred.endpoint_hazard_logits["dfs"], multi.endpoint_heads["dfs"].linear(h))
    assert not torch.equal(multi.endpoint_heads["dfs"].linear.weight, multi.head.linear.weight)


def test_endpoints_null_means_every_further_endpoint_and_the_primary_reuses_its_head() -> None:
    net = ClinicalMLP(TWO_ENDPOINTS, hidden=(8,), output="risk", endpoints=["os", "dfs"]).eval()
    pred = net(random_batch(TWO_ENDPOINTS))
    assert list(net.endpoint_heads) == ["dfs"]  # os is the primary: no second head for it
    assert torch.equal(pred.endpoint_risk["os"], pred.risk) and pred.endpoint_risk["dfs"].shape == (2,)
    assert list(ClinicalMLP(TWO_ENDPOINTS, endpoints=None).endpoint_heads) == ["dfs"]
    assert list(ClinicalMLP(TWO_ENDPOINTS).endpoint_heads) == []  # default: the primary endpoint only


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"endpoints": ["pfs"]},
            r"ClinicalMLP endpoints \['pfs'\] are not survival endpoints of the cohort \(it has \['os', 'dfs'\]\)",
        ),
        ({"endpoints": ["dfs", "dfs"]}, r"name an endpoint twice"),
        ({"targets": ["stage"]}, r"ClinicalMLP targets \['stage'\] are not patient labels of the cohort"),
        ({"survival": False}, r"ClinicalMLP predicts nothing: survival is false and no targets"),
        ({"output": "cox"}, r"ClinicalMLP: output must be one of \('hazards', 'risk'\) \(model.net.output\)"),
    ],
)
def test_bad_head_settings_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        ClinicalMLP(TWO_ENDPOINTS, **kwargs)
    assert "\n" not in str(err.value)


def test_mcat_gr_refuses_its_grade_label_as_a_second_head() -> None:
    with pytest.raises(ValueError, match=r"MCATGR: 'grade' has its own grade head"):
        MCATGR(DIMS, dim=8, heads=2, ff_dim=16, targets=["grade"])


# ---------------------------------------------------------------- a table network learns a planted class signal
def planted_table(n: int, seed: int) -> tuple[list[PatientItem], np.ndarray]:
    """3 classes; class y shifts clinical feature y and the genes of group y by +2 (noise N(0, 1)); Bayes accuracy
    about 0.9 from either table alone."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    clinical = rng.normal(size=(n, 3))
    clinical[np.arange(n), y] += 2.0
    groups = [rng.normal(size=(n, g)) for g in DIMS.genomic_sizes]
    for k, g in enumerate(groups):
        g[y == k] += 1.0
    items = [
        PatientItem(
            case_id=f"P{i:03d}",
            index=i,
            clinical=torch.tensor(clinical[i], dtype=torch.float32),
            genomics=[torch.tensor(g[i], dtype=torch.float32) for g in groups],
            labels={"grade": int(y[i])},
        )
        for i in range(n)
    ]
    return items, y


@pytest.mark.parametrize("name", ["clinical_mlp", "coxmlp", "snn"])
def test_table_network_learns_a_planted_class_signal(name: str) -> None:
    torch.manual_seed(0)
    net = NETS[name](targets=["grade"], survival=False)
    train, _ = planted_table(300, seed=0)
    test, y_test = planted_table(200, seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _epoch in range(15):
        for start in range(0, len(train), 50):
            batch: Batch = collate(train[start : start + 50])
            loss = F.cross_entropy(net(batch).class_logits["grade"], batch.labels["grade"])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = net.eval()(collate(test)).class_logits["grade"].argmax(-1).numpy()
    assert balanced_accuracy_score(y_test, pred) > 0.75  # chance 1/3


# ---------------------------------------------------------------- the other bases
def test_denoiser_and_segmentor_have_their_own_bases() -> None:
    dims = ModalityDims(wsi_dim=6, genomic_sizes=(4, 5))
    denoiser = PathGenDenoiser(
        dims, dim=8, enc_hidden=(8,), dec_hidden=(8,), time_dim=8, time_hidden=8, rounds=1, heads=2, ff_dim=8
    )
    assert isinstance(denoiser, Denoiser) and not isinstance(denoiser, OutcomeNet)
    batch = random_batch(dims)
    x_t = [torch.zeros(2, 4), torch.zeros(2, 5)]
    eps = denoiser.eval()(x_t, torch.tensor([3, 7]), batch)
    context, mask = denoiser.encode_context(batch)
    for a, b in zip(eps, denoiser.denoise(x_t, torch.tensor([3, 7]), context, mask), strict=True):
        torch.testing.assert_close(a, b)
    assert issubclass(LungLesionSegmentor, Segmentor) and LungLesionSegmentor.MASKS == ("lung", "lesion")
    with pytest.raises(NotImplementedError, match="must implement forward_features"):
        OutcomeNet(DIMS).forward_features(batch)
    assert Features(torch.zeros(2, 3)).attention == {}
