"""Baseline networks (ABMIL, SNN, ClinicalMLP, LateFusion): shapes, padding invariance, attention, modality
errors, and learning a planted survival signal (held-out Harrell C-index)."""

from __future__ import annotations

import hydra
import numpy as np
import pytest
import torch

from survlab.data.batch import PatientItem, collate
from survlab.models.abmil import ABMIL
from survlab.models.base import ModalityDims, Prediction, risk_score
from survlab.models.clinical_mlp import ClinicalMLP
from survlab.models.late_fusion import LateFusion
from survlab.models.snn import SNN
from survlab.tasks.losses import cox_partial_likelihood, nll_discrete_survival

D, GENES, C, BINS = 8, (5, 7, 4), 6, 4
DIMS = ModalityDims(
    wsi_dim=D, genomic_sizes=GENES, genomic_names=("a", "b", "c"), clinical_dim=C, n_bins=BINS
)

NETS = {
    "abmil": lambda output: ABMIL(DIMS, hidden_dim=16, dropout=0.1, output=output),
    "snn": lambda output: SNN(DIMS, hidden=[16, 16], dropout=0.1, output=output),
    "clinical_mlp": lambda output: ClinicalMLP(DIMS, hidden=[16], dropout=0.1, output=output),
    "late_fusion": lambda output: LateFusion(
        DIMS, wsi_hidden=16, genomic_hidden=[16], fusion="concat", fusion_dim=16, output=output
    ),
    "late_fusion_bilinear": lambda output: LateFusion(
        DIMS, wsi_hidden=16, genomic_hidden=[16], fusion="bilinear", fusion_dim=16, gate_dim=4, output=output
    ),
}
WITH_WSI = ("abmil", "late_fusion", "late_fusion_bilinear")


def make_item(i: int, n_patches: int, gen: torch.Generator) -> PatientItem:
    return PatientItem(
        case_id=f"P{i:03d}",
        index=i,
        time=float(i + 1),
        event=bool(i % 2),
        time_bin=i % BINS,
        wsi=torch.randn(n_patches, D, generator=gen),
        genomics=[torch.randn(g, generator=gen) for g in GENES],
        clinical=torch.randn(C, generator=gen),
    )


@pytest.fixture()
def items() -> list[PatientItem]:
    gen = torch.Generator().manual_seed(0)
    return [make_item(i, n, gen) for i, n in enumerate([3, 9, 1, 6])]


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("output", ["hazards", "risk"])
def test_shapes(name: str, output: str, items: list[PatientItem]) -> None:
    torch.manual_seed(0)
    net = NETS[name](output)
    batch = collate(items)
    pred = net(batch)
    assert isinstance(pred, Prediction)
    if output == "hazards":
        assert pred.hazard_logits.shape == (4, BINS) and pred.risk is None
    else:
        assert pred.risk.shape == (4,) and pred.hazard_logits is None
    assert risk_score(pred).shape == (4,)
    assert pred.embedding is not None and pred.embedding.shape[0] == 4
    assert torch.isfinite(risk_score(pred)).all()
    if name in WITH_WSI:
        assert pred.attention["patch"].shape == batch.wsi_mask.shape
    risk_score(pred).sum().backward()  # gradients flow through every output head


def test_unknown_output_is_rejected() -> None:
    with pytest.raises(ValueError, match="output must be one of"):
        ABMIL(DIMS, output="survival")
    with pytest.raises(ValueError, match="fusion must be one of"):
        LateFusion(DIMS, fusion="sum")


@pytest.mark.parametrize("name", WITH_WSI)
@pytest.mark.parametrize("output", ["hazards", "risk"])
def test_padding_never_changes_the_prediction(name: str, output: str, items: list[PatientItem]) -> None:
    torch.manual_seed(0)
    net = NETS[name](output).eval()
    key = "hazard_logits" if output == "hazards" else "risk"
    with torch.no_grad():
        together = net(collate(items))
        for i, item in enumerate(items):
            alone = net(collate([item]))
            torch.testing.assert_close(
                getattr(alone, key)[0], getattr(together, key)[i], atol=1e-5, rtol=1e-5
            )
            torch.testing.assert_close(alone.embedding[0], together.embedding[i], atol=1e-5, rtol=1e-5)
            n = item.wsi.shape[0]
            torch.testing.assert_close(alone.attention["patch"][0], together.attention["patch"][i, :n])


@pytest.mark.parametrize("name", WITH_WSI)
def test_attention_is_zero_on_padding_and_sums_to_one(name: str, items: list[PatientItem]) -> None:
    torch.manual_seed(0)
    batch = collate(items)
    attn = NETS[name]("hazards").eval()(batch).attention["patch"]
    assert (attn[~batch.wsi_mask] == 0).all()
    assert (attn[batch.wsi_mask] > 0).all()
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(len(items)))


from survlab.config.search_path import PACKAGE_CONF_DIR as CONF_DIR  # noqa: E402


@pytest.mark.parametrize(
    ("config", "cls", "fusion"),
    [
        ("abmil", ABMIL, None),
        ("snn", SNN, None),
        ("clinical_mlp", ClinicalMLP, None),
        ("late_fusion", LateFusion, "concat"),
        ("late_fusion_bilinear", LateFusion, "bilinear"),
    ],
)
def test_model_config_builds_the_net(
    config: str, cls: type, fusion: str | None, items: list[PatientItem]
) -> None:
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR / "model"), version_base="1.3"):
        cfg = hydra.compose(config_name=config, overrides=["net.output=risk"])
    assert cfg.name == config and "loss" in cfg.task
    net = hydra.utils.instantiate(cfg.net, _partial_=True)(dims=DIMS)  # as survlab.run builds it
    assert type(net) is cls and getattr(net, "fusion_kind", None) == fusion
    assert net(collate(items)).risk.shape == (len(items),)


@pytest.mark.parametrize(
    ("cls", "dims", "missing"),
    [
        (ABMIL, ModalityDims(genomic_sizes=GENES), "['wsi']"),
        (SNN, ModalityDims(wsi_dim=D), "['genomics']"),
        (ClinicalMLP, ModalityDims(wsi_dim=D, genomic_sizes=GENES), "['clinical']"),
        (LateFusion, ModalityDims(wsi_dim=D, clinical_dim=C), "['genomics']"),
    ],
)
def test_missing_modality_is_a_one_line_error(cls: type, dims: ModalityDims, missing: str) -> None:
    with pytest.raises(ValueError) as err:
        cls(dims)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{cls.__name__} needs modalities {list(cls.modalities)} but the cohort provides")
    assert f"(missing: {missing})" in msg


# ---------------------------------------------------------------- learning a planted signal


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny ops: one intra-op thread is faster and immune to oversubscription on a loaded CI box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def harrell_cindex(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Harrell's C: over comparable pairs (i had the event and t_i < t_j), fraction with risk_i > risk_j (ties ½)."""
    num = den = 0.0
    for i in np.flatnonzero(event):
        later = time > time[i]
        den += later.sum()
        num += (risk[i] > risk[later]).sum() + 0.5 * (risk[i] == risk[later]).sum()
    return num / den


def planted_cohort(n: int, seed: int) -> tuple[list[PatientItem], np.ndarray]:
    """Latent risk z drives exponential survival times (hazard exp(2 z)) with uniform censoring. z is planted in
    30% of each bag's patches along a fixed direction, in 3 of the genes (group 0) and in clinical column 0;
    everything else is noise."""
    rng = np.random.default_rng(seed)
    direction = np.zeros(D)
    direction[0] = 1.0
    z = rng.normal(size=n)
    t_event = rng.exponential(1.0 / np.exp(2.0 * z))
    t_censor = rng.uniform(0.0, 2.0 * np.median(t_event), size=n)
    time = np.minimum(t_event, t_censor)
    event = t_event <= t_censor
    items = []
    for i in range(n):
        n_patches = int(rng.integers(6, 20))
        wsi = rng.normal(size=(n_patches, D))
        signal = rng.random(n_patches) < 0.3
        signal[0] = True
        wsi[signal] += 3.0 * z[i] * direction
        genes = [rng.normal(size=g) for g in GENES]
        genes[0][:3] += 2.0 * z[i]
        items.append(
            PatientItem(
                case_id=f"P{i:03d}",
                index=i,
                time=float(time[i]),
                event=bool(event[i]),
                wsi=torch.tensor(wsi, dtype=torch.float32),
                genomics=[torch.tensor(g, dtype=torch.float32) for g in genes],
                clinical=torch.tensor([z[i], *rng.normal(size=C - 1)], dtype=torch.float32),
            )
        )
    return items, z


def fit_and_score(make_net, seed: int, n_train: int = 60, n_test: int = 60, steps: int = 80) -> float:
    torch.manual_seed(seed)
    items, _ = planted_cohort(n_train + n_test, seed)
    train, test = items[:n_train], items[n_train:]
    # time bins: quantiles of the training event times (as the data module does)
    event_times = np.array([it.time for it in train if it.event])
    edges = np.quantile(event_times, np.linspace(0, 1, BINS + 1))[1:-1]
    for it in items:
        it.time_bin = int(np.searchsorted(edges, it.time, side="right"))
    train_batch, test_batch = collate(train), collate(test)
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = nll_discrete_survival(net(train_batch).hazard_logits, train_batch.time_bin, train_batch.event)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        risk = risk_score(net(test_batch)).numpy()
    return harrell_cindex(risk, test_batch.time.numpy(), test_batch.event.numpy())


LEARNERS = {
    "abmil": lambda: ABMIL(DIMS, hidden_dim=32, dropout=0.1),
    "snn": lambda: SNN(DIMS, hidden=[32, 32], dropout=0.1),
    "late_fusion": lambda: LateFusion(DIMS, wsi_hidden=32, genomic_hidden=[32], fusion_dim=32, dropout=0.1),
    "late_fusion_bilinear": lambda: LateFusion(
        DIMS, wsi_hidden=32, genomic_hidden=[32], fusion="bilinear", fusion_dim=32, gate_dim=8, dropout=0.1
    ),
}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_learns_planted_signal(name: str) -> None:
    cindex = fit_and_score(LEARNERS[name], seed=0)
    assert cindex > 0.65, f"{name}: held-out C-index {cindex:.3f}"


def test_risk_output_learns_with_the_cox_loss() -> None:
    torch.manual_seed(0)
    items, _ = planted_cohort(120, seed=0)
    train, test = collate(items[:60]), collate(items[60:])
    net = ClinicalMLP(DIMS, hidden=[16], dropout=0.1, output="risk")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        cox_partial_likelihood(net(train).risk, train.time, train.event).backward()
        opt.step()
    with torch.no_grad():
        risk = net.eval()(test).risk.numpy()
    cindex = harrell_cindex(risk, test.time.numpy(), test.event.numpy())
    assert cindex > 0.7, f"clinical_mlp (Cox): held-out C-index {cindex:.3f}"
