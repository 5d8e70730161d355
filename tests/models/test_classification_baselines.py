"""Classification baselines (ABMIL with class heads, MeanMIL, MaxMIL, CLAM-SB): shapes with padding, mask
invariance, CLAM's instance loss (training only, labelled bags only, equal to a per-bag reference), gradients to
every parameter, config errors, Hydra configs, and learning a planted patch-level class signal in a plain torch loop."""

from __future__ import annotations

import math
from collections.abc import Callable

import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from survlab.data.batch import Batch, PatientItem, collate
from survlab.models.abmil import ABMIL
from survlab.models.base import ModalityDims, OutcomeNet, Prediction
from survlab.models.clam import CLAMSB, smooth_top1_svm
from survlab.models.max_mil import MaxMIL
from survlab.models.mean_mil import MeanMIL

D, K, BINS = 6, 3, 4
DIMS = ModalityDims(wsi_dim=D, n_bins=BINS, n_classes={"subtype": K, "grade": 2})
CLS_DIMS = ModalityDims(wsi_dim=D, n_bins=BINS, n_classes={"subtype": K})

NETS: dict[str, Callable[[], OutcomeNet]] = {
    "abmil": lambda: ABMIL(DIMS, hidden_dim=16, dropout=0.1, targets=["subtype", "grade"]),
    "mean_mil": lambda: MeanMIL(DIMS, hidden_dim=16, dropout=0.1, survival=True),
    "max_mil": lambda: MaxMIL(DIMS, hidden_dim=16, dropout=0.1, survival=True),
    "max_mil_risk": lambda: MaxMIL(DIMS, hidden_dim=16, dropout=0.1, survival=True, output="risk"),
    "clam_sb": lambda: CLAMSB(DIMS, dropout=0.1, k_sample=4, targets=["subtype"], survival=True),
    "clam_sb_subtyping": lambda: CLAMSB(DIMS, dropout=0.1, k_sample=4, targets=["subtype"], subtyping=True),
}


def make_items(lengths: list[int], seed: int = 0, labels: list[int] | None = None) -> list[PatientItem]:
    gen = torch.Generator().manual_seed(seed)
    labels = labels if labels is not None else [i % K for i in range(len(lengths))]
    return [
        PatientItem(
            case_id=f"P{i:03d}",
            index=i,
            time=float(i + 1),
            event=bool(i % 2),
            time_bin=i % BINS,
            wsi=torch.randn(n, D, generator=gen) - 2.0,  # all-negative features: zero padding would win a max
            labels={"subtype": y, "grade": i % 2},
        )
        for i, (n, y) in enumerate(zip(lengths, labels, strict=True))
    ]


def padded(items: list[PatientItem], fill: float = 1e4) -> Batch:
    """collate, then fill padded patches with a huge value: padding that leaks in changes every output."""
    batch = collate(items)
    batch.wsi[~batch.wsi_mask] = fill
    return batch


def outputs(pred: Prediction) -> dict[str, torch.Tensor]:
    """Every per-patient output of a prediction, flattened to {name: [B, ...]}."""
    out = {f"class:{k}": v for k, v in pred.class_logits.items()}
    for name in ("hazard_logits", "risk", "embedding"):
        if getattr(pred, name) is not None:
            out[name] = getattr(pred, name)
    return out


@pytest.mark.parametrize("name", list(NETS))
def test_shapes_for_a_padded_batch(name: str) -> None:
    torch.manual_seed(0)
    net = NETS[name]().eval()
    pred = net(padded(make_items([3, 9, 1, 6])))
    expected = (
        {"subtype": (4, K), "grade": (4, 2)}
        if name in ("abmil", "mean_mil", "max_mil", "max_mil_risk")
        else {"subtype": (4, K)}
    )
    assert {k: tuple(v.shape) for k, v in pred.class_logits.items()} == expected
    if net.head is not None and net.head.output == "hazards":
        assert pred.hazard_logits.shape == (4, BINS) and pred.risk is None
    elif net.head is not None:
        assert pred.risk.shape == (4,) and pred.hazard_logits is None
    else:
        assert pred.hazard_logits is None and pred.risk is None
    assert pred.aux_losses == {}  # eval mode: no instance loss
    assert all(torch.isfinite(v).all() and v.abs().max() < 1e3 for v in outputs(pred).values())


@pytest.mark.parametrize("name", list(NETS))
def test_a_bag_alone_equals_the_same_bag_padded_in_a_batch(name: str) -> None:
    torch.manual_seed(0)
    net = NETS[name]().eval()
    items = make_items([3, 9, 1, 6])
    with torch.no_grad():
        together = outputs(net(padded(items)))
        for i, item in enumerate(items):
            alone = outputs(net(collate([item])))
            assert alone.keys() == together.keys()
            for key, value in alone.items():
                torch.testing.assert_close(
                    value[0], together[key][i], atol=1e-5, rtol=1e-5, msg=f"{name} {key}"
                )


def test_max_mil_takes_each_logit_from_its_best_real_patch() -> None:
    torch.manual_seed(0)
    net = MaxMIL(CLS_DIMS, hidden_dim=8, dropout=0.0).eval()
    items = make_items([5, 2])
    with torch.no_grad():
        got = net(padded(items)).class_logits["subtype"]
        for i, item in enumerate(items):
            per_patch = net.class_heads(net.patch_fc(item.wsi))["subtype"]  # [N, K]
            torch.testing.assert_close(got[i], per_patch.max(dim=0).values)


def test_mean_mil_is_the_head_of_the_mean_patch_embedding() -> None:
    torch.manual_seed(0)
    net = MeanMIL(CLS_DIMS, hidden_dim=8, dropout=0.0).eval()
    items = make_items([5, 2])
    with torch.no_grad():
        got = net(padded(items)).class_logits["subtype"]
        for i, item in enumerate(items):
            expected = net.class_heads(net.patch_fc(item.wsi).mean(dim=0))["subtype"]
            torch.testing.assert_close(got[i], expected)


# ---------------------------------------------------------------- CLAM's instance loss


def test_smooth_top1_svm_values() -> None:
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    target = torch.tensor([0, 1])
    loss = smooth_top1_svm(logits, target)  # tau * logsumexp((s + 1[j != y] - s_y) / tau)
    torch.testing.assert_close(
        loss, torch.tensor([math.log(1 + math.exp(-1.0)), math.log(math.exp(3.0) + 1.0)])
    )
    hinge = smooth_top1_svm(
        logits, target, tau=1e-3
    )  # tau -> 0: the multiclass hinge max_j(s_j + 1[j≠y]) - s_y
    torch.testing.assert_close(hinge, torch.tensor([0.0, 3.0]), atol=1e-3, rtol=0)


def reference_instance_loss(net: CLAMSB, item: PatientItem, y: int) -> torch.Tensor:
    """CLAM's per-bag loop (inst_eval / inst_eval_out), written independently of the vectorised code."""
    h = net.patch_fc(item.wsi)  # [N, H]
    _, attn = net.pool(h.unsqueeze(0))
    order = torch.argsort(attn[0], descending=True)
    k = min(net.k_sample, h.shape[0])
    top, bottom = h[order[:k]], h[order.flip(0)[:k]]
    loss_fn = net.instance_loss_fn
    total = torch.zeros(())
    for c, clf in enumerate(net.instance_classifiers):
        if c == y:
            x = torch.cat([top, bottom])
            t = torch.tensor([1] * k + [0] * k)
        elif net.subtyping:
            x, t = top, torch.zeros(k, dtype=torch.long)
        else:
            continue
        total = total + loss_fn(clf(x), t).mean()
    return total / net.n_classes if net.subtyping else total


@pytest.mark.parametrize("subtyping", [False, True])
@pytest.mark.parametrize("loss", ["svm", "ce"])
def test_clam_instance_loss_equals_clams_per_bag_loop(subtyping: bool, loss: str) -> None:
    torch.manual_seed(0)
    net = CLAMSB(CLS_DIMS, dropout=0.0, k_sample=4, instance_loss=loss, subtyping=subtyping).train()
    items = make_items(
        [9, 3, 12, 6], labels=[0, 2, 1, 2]
    )  # bag 1 has fewer than k patches: all of them are used
    got = net(padded(items)).aux_losses["instance"]
    expected = torch.stack([reference_instance_loss(net, it, it.labels["subtype"]) for it in items]).mean()
    torch.testing.assert_close(got, expected)
    assert got > 0.1


def test_clam_instance_loss_only_in_training_and_only_for_labelled_bags() -> None:
    torch.manual_seed(0)
    net = CLAMSB(CLS_DIMS, dropout=0.0, k_sample=4, subtyping=True)
    labelled = make_items([7], labels=[1])
    mixed = labelled + make_items([12, 4], seed=1, labels=[-1, -1])
    assert "instance" not in net.eval()(padded(mixed)).aux_losses
    net.train()
    alone = net(collate(labelled)).aux_losses["instance"]
    torch.testing.assert_close(
        net(padded(mixed)).aux_losses["instance"], alone
    )  # unlabelled bags add nothing
    assert alone > 0.1
    none = net(padded(make_items([5, 8], labels=[-1, -1]))).aux_losses["instance"]
    assert none.item() == 0.0 and none.requires_grad  # still in the graph (DDP sees every parameter)


def test_clam_without_the_label_in_the_batch_is_a_one_line_error() -> None:
    net = CLAMSB(CLS_DIMS, k_sample=2).train()
    batch = collate(make_items([4, 5]))
    batch.labels = {"grade": batch.labels["grade"]}
    with pytest.raises(
        ValueError, match=r"^CLAMSB trains on label 'subtype' but the batch has labels \['grade'\]"
    ):
        net(batch)


# ---------------------------------------------------------------- gradients, errors, configs


@pytest.mark.parametrize("name", list(NETS))
def test_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    net = NETS[name]().train()
    batch = padded(
        make_items([3, 9, 5, 6, 8, 4])
    )  # every class present: each CLAM instance classifier is trained
    pred = net(batch)
    loss = sum(F.cross_entropy(logits, batch.labels[label]) for label, logits in pred.class_logits.items())
    loss = loss + sum(pred.aux_losses.values(), torch.zeros(()))
    if pred.hazard_logits is not None:
        loss = loss + pred.hazard_logits.sigmoid().sum()
    if pred.risk is not None:
        loss = loss + pred.risk.sum()
    loss.backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not (p.grad != 0).any()]
    assert dead == []


def test_abmil_keeps_its_survival_parameters_and_adds_named_class_heads() -> None:
    torch.manual_seed(0)
    survival_only = ABMIL(DIMS, hidden_dim=16)
    torch.manual_seed(0)
    both = ABMIL(DIMS, hidden_dim=16, targets=["grade"])
    assert (
        survival_only.class_heads.keys() == set()
        and survival_only(collate(make_items([3]))).class_logits == {}
    )
    new = set(both.state_dict()) - set(survival_only.state_dict())
    assert new == {"class_heads.grade.weight", "class_heads.grade.bias"}
    for key, value in survival_only.state_dict().items():  # same names, same initial values (same RNG order)
        torch.testing.assert_close(both.state_dict()[key], value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: MeanMIL(DIMS, targets=["stage"]),
            r"^MeanMIL targets \['stage'\] are not patient labels of the "
            r"cohort \(it has \['subtype', 'grade'\]\); set model.net.targets",
        ),
        (
            lambda: MaxMIL(DIMS, targets=["grade", "grade"]),
            r"^MaxMIL targets \['grade', 'grade'\] name a label twice",
        ),
        (lambda: ABMIL(DIMS, survival=False), r"^ABMIL predicts nothing: survival is false and no targets"),
        (lambda: MeanMIL(ModalityDims(wsi_dim=D)), r"^MeanMIL predicts nothing"),
        (
            lambda: CLAMSB(DIMS),
            r"^CLAMSB classifies exactly one patient label .* got targets \['subtype', 'grade'\]",
        ),
        (lambda: CLAMSB(CLS_DIMS, instance_loss="hinge"), r"^CLAMSB instance_loss must be one of"),
        (lambda: CLAMSB(CLS_DIMS, size_arg="huge"), r"^CLAMSB size_arg must be one of"),
    ],
)
def test_bad_settings_are_one_line_errors(make: Callable[[], OutcomeNet], message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


from survlab.config.search_path import PACKAGE_CONF_DIR as CONF_DIR  # noqa: E402


@pytest.mark.parametrize(
    ("config", "cls", "overrides"),
    [
        ("abmil", ABMIL, ["net.targets=[subtype]", "net.survival=false"]),
        ("mean_mil", MeanMIL, []),
        ("max_mil", MaxMIL, []),
        ("clam_sb", CLAMSB, ["net.targets=[subtype]"]),
    ],
)
def test_model_config_builds_a_classifier(config: str, cls: type, overrides: list[str]) -> None:
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR / "model"), version_base="1.3"):
        cfg = hydra.compose(config_name=config, overrides=overrides)
    assert cfg.name == config
    net = hydra.utils.instantiate(cfg.net, _partial_=True)(dims=DIMS)  # as survlab.run builds it
    assert type(net) is cls
    pred = net.eval()(collate(make_items([4, 7])))
    assert pred.class_logits["subtype"].shape == (2, K) and pred.hazard_logits is None and pred.risk is None
    if config == "clam_sb":
        assert (net.k_sample, net.pool.score.in_features, net.patch_fc[0].out_features) == (8, 256, 512)


# ---------------------------------------------------------------- learning a planted patch-level class signal


def planted_bags(n: int, seed: int) -> list[PatientItem]:
    """Class y in {0, 1, 2}; 25% of each bag's patches (at least one) are shifted by +3 along feature direction y;
    everything else is N(0, 1) noise. Bayes accuracy is close to 1."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        y = int(rng.integers(K))
        n_patches = int(rng.integers(6, 20))
        wsi = rng.normal(size=(n_patches, D))
        signal = rng.random(n_patches) < 0.25
        signal[0] = True
        wsi[signal, y] += 3.0
        wsi = wsi[rng.permutation(n_patches)]
        items.append(
            PatientItem(
                case_id=f"P{i:03d}",
                index=i,
                wsi=torch.tensor(wsi, dtype=torch.float32),
                labels={"subtype": y},
            )
        )
    return items


def balanced_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean([(pred[true == c] == c).mean() for c in np.unique(true)]))


LEARNERS: dict[str, Callable[[], OutcomeNet]] = {
    "abmil": lambda: ABMIL(CLS_DIMS, hidden_dim=32, dropout=0.1, targets=["subtype"], survival=False),
    "mean_mil": lambda: MeanMIL(CLS_DIMS, hidden_dim=32, dropout=0.1),
    "max_mil": lambda: MaxMIL(CLS_DIMS, hidden_dim=32, dropout=0.1),
    "clam_sb": lambda: CLAMSB(CLS_DIMS, dropout=0.1, k_sample=4, subtyping=True),
}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_learns_a_planted_patch_level_class_signal(name: str) -> None:
    torch.manual_seed(0)
    items = planted_bags(120, seed=0)
    train, test = collate(items[:60]), collate(items[60:])
    net = LEARNERS[name]()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-5)
    net.train()
    for _ in range(60):
        opt.zero_grad()
        pred = net(train)
        loss = F.cross_entropy(pred.class_logits["subtype"], train.labels["subtype"])
        loss = loss + 0.3 / 0.7 * sum(pred.aux_losses.values(), torch.zeros(()))  # CLAM's bag_weight 0.7
        loss.backward()
        opt.step()
    with torch.no_grad():
        guess = net.eval()(test).class_logits["subtype"].argmax(dim=1).numpy()
    bacc = balanced_accuracy(guess, test.labels["subtype"].numpy())
    assert bacc > 0.8, f"{name}: held-out balanced accuracy {bacc:.3f} (chance 0.33)"


def test_abmil_slide_heads_ignore_padding_and_other_slides() -> None:
    """slide_logits [B, S, K]: a patient alone equals the same patient padded in a batch, and a slide's logits do not
    change when another slide of the same patient changes."""
    import torch

    from survlab.data.batch import PatientItem, collate
    from survlab.models.abmil import ABMIL
    from survlab.models.base import ModalityDims

    g = torch.Generator().manual_seed(0)
    dims = ModalityDims(wsi_dim=6, slide_n_classes={"stage": 3})
    net = ABMIL(dims, hidden_dim=16, targets=[], survival=False, slide_targets=["stage"]).eval()

    def item(i: int, sizes: list[int]) -> PatientItem:
        wsi = torch.randn(sum(sizes), 6, generator=g)
        sidx = torch.cat([torch.full((n,), j) for j, n in enumerate(sizes)])
        return PatientItem(
            case_id=f"c{i}",
            index=i,
            wsi=wsi,
            slide_index=sidx,
            n_slides=len(sizes),
            slide_labels={"stage": [0] * len(sizes)},
        )

    a, b = item(0, [5, 3]), item(1, [4, 7, 2])
    alone = net(collate([a])).slide_logits["stage"]
    both = net(collate([a, b])).slide_logits["stage"]
    assert both.shape == (2, 3, 3)
    torch.testing.assert_close(alone[0], both[0, :2])
    changed = PatientItem(**{**a.__dict__, "wsi": a.wsi.clone()})
    changed.wsi[5:] += 10.0  # only slide 1's patches
    after = net(collate([changed])).slide_logits["stage"]
    torch.testing.assert_close(after[0, 0], alone[0, 0])
    assert not torch.allclose(after[0, 1], alone[0, 1])
