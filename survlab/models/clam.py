"""CLAM-SB: clustering-constrained attention MIL, single attention branch (Lu et al. 2021, Nat. Biomed. Eng.).

    patches [B, N, D] → Linear(D→512) → ReLU → Dropout → h [B, N, 512]
      → gated attention (512→256, dropout) → a [B, N] (masked) → Σ a h [B, 512] → class head (and survival head)
      training only: instance clustering loss on the k most / k least attended patches of each labelled bag

Instance clustering (CLAM's weak patch supervision): one 2-way instance classifier per class. For a bag of class y,
classifier y learns "top-k attended patches = positive (1), bottom-k = negative (0)"; with `subtyping` (classes are
mutually exclusive subtypes, e.g. LUAD vs LUSC) every other classifier c ≠ y also learns "the bag's top-k patches are
not class c (0)", and the bag's sum is divided by the number of classes. The loss is returned as
`Prediction.aux_losses["instance"]` (mean over the labelled bags of the batch; bags with label -1 get none) and is
weighted by the task: CLAM's total is `bag_weight · CE + (1 − bag_weight) · instance` with bag_weight 0.7.

Settings as CLAM ships them: size_arg "small" → [D, 512, 256] ("big" → [D, 512, 384]), dropout 0.25, k_sample 8,
instance loss "svm" (smooth top-1 SVM, α = 1, τ = 1) or "ce". A bag with fewer than k real patches uses all of them
(CLAM would fail on it). Padding never changes the prediction or the instance loss.

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(wsi_dim=32, n_classes={"subtype": 2})
    >>> net = CLAMSB(dims, subtyping=True, k_sample=2)
    >>> pred = net.train()(random_batch(dims, bag_sizes=(6, 4)))
    >>> pred.class_logits["subtype"].shape, pred.aux_losses["instance"].shape  # [B, 2], scalar
    (torch.Size([2, 2]), torch.Size([]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import Features, ModalityDims, OutcomeNet
from survlab.models.blocks import GatedAttentionPool, mlp
from survlab.models.precision import at_least_fp32

#: size_arg -> (patch embedding size, attention hidden size), as in CLAM's size_dict
CLAM_SIZES: dict[str, tuple[int, int]] = {"small": (512, 256), "big": (512, 384)}
INSTANCE_LOSSES = ("svm", "ce")


def smooth_top1_svm(logits: Tensor, target: Tensor, alpha: float = 1.0, tau: float = 1.0) -> Tensor:
    """Smooth top-1 multiclass SVM loss (Berrada et al. 2018), per sample: logits [M, C], target [M] -> [M].

    τ · log Σ_j exp((s_j + α·[j ≠ y] − s_y) / τ): a smoothed max_j(s_j + α·[j ≠ y]) − s_y (the hinge with margin α).
    """
    logits = at_least_fp32(logits)
    margin = alpha * (1.0 - F.one_hot(target, logits.shape[-1]).to(logits.dtype))
    shifted = logits + margin - logits.gather(-1, target.unsqueeze(-1))
    return tau * torch.logsumexp(shifted / tau, dim=-1)


def _cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-sample cross-entropy: logits [M, C], target [M] -> [M]."""
    return F.cross_entropy(at_least_fp32(logits), target, reduction="none")


class CLAMSB(OutcomeNet):
    """CLAM single-branch network for one patient label (plus an optional survival head).

    Args:
        dims: cohort sizes (needs `wsi_dim`; `n_classes` has the target label).
        size_arg: "small" ([D, 512, 256]) or "big" ([D, 512, 384]).
        dropout: dropout after the patch layer and inside the attention scorer (CLAM: 0.25).
        k_sample: patches taken from each end of the attention ranking for the instance loss (CLAM: 8).
        instance_loss: "svm" (smooth top-1 SVM) or "ce".
        subtyping: also train the other classes' instance classifiers on the top-k patches as negatives.
        targets: the ONE patient label to classify (None = the cohort's only label).
        survival: also predict survival from the pooled embedding (`output`: "hazards" | "risk").
    """

    modalities = ("wsi",)

    def __init__(
        self,
        dims: ModalityDims,
        size_arg: str = "small",
        dropout: float = 0.25,
        k_sample: int = 8,
        instance_loss: str = "svm",
        subtyping: bool = False,
        targets: Sequence[str] | None = None,
        survival: bool = False,
        output: str = "hazards",
        endpoints: Sequence[str] | None = (),
    ) -> None:
        super().__init__(dims)
        assert dims.wsi_dim is not None  # SurvivalNet checked `modalities`
        if size_arg not in CLAM_SIZES:
            raise ValueError(f"CLAMSB size_arg must be one of {list(CLAM_SIZES)}, got {size_arg!r}")
        if instance_loss not in INSTANCE_LOSSES:
            raise ValueError(f"CLAMSB instance_loss must be one of {INSTANCE_LOSSES}, got {instance_loss!r}")
        if k_sample < 1:
            raise ValueError(f"CLAMSB k_sample must be >= 1, got {k_sample}")
        hidden, attn_dim = CLAM_SIZES[size_arg]
        self.patch_fc = mlp([dims.wsi_dim, hidden], dropout=dropout)
        self.pool = GatedAttentionPool(hidden, hidden=attn_dim, dropout=dropout)
        self.init_heads(hidden, targets, survival, output, endpoints=endpoints)
        if len(self.targets) != 1:
            raise ValueError(
                f"CLAMSB classifies exactly one patient label (its instance loss needs it), got targets "
                f"{list(self.targets)}; set model.net.targets=[<label>]"
            )
        self.label = self.targets[0]
        self.n_classes = dims.n_classes[self.label]
        self.instance_classifiers = nn.ModuleList(nn.Linear(hidden, 2) for _ in range(self.n_classes))
        self.k_sample = int(k_sample)
        self.subtyping = bool(subtyping)
        self.instance_loss_fn = smooth_top1_svm if instance_loss == "svm" else _cross_entropy

    def forward_features(self, batch: Batch) -> Features:
        """Attention-pooled embedding [B, H], patch attention [B, N]; in training the instance loss (aux)."""
        mask = batch.wsi_mask
        if mask is None:
            mask = torch.ones(batch.wsi.shape[:2], dtype=torch.bool, device=batch.wsi.device)
        h = self.patch_fc(batch.wsi)  # [B, N, H]
        pooled, attn = self.pool(h, mask)  # [B, H], [B, N]
        features = Features(pooled, attention={"patch": attn})
        if self.training:
            if self.label not in batch.labels:
                raise ValueError(
                    f"CLAMSB trains on label {self.label!r} but the batch has labels {sorted(batch.labels)}; "
                    f"add it to the data config's labels"
                )
            features.aux_losses["instance"] = self.instance_loss(h, attn, mask, batch.labels[self.label])
        return features

    def instance_loss(self, h: Tensor, attn: Tensor, mask: Tensor, label: Tensor) -> Tensor:
        """CLAM's instance clustering loss: h [B, N, H], attn [B, N], mask [B, N], label [B] (-1 = missing) -> scalar.

        Mean over the labelled bags (0, still attached to the graph, when none is labelled).
        """
        _, n, width = h.shape
        k = min(self.k_sample, n)
        top = attn.masked_fill(~mask, float("-inf")).topk(k, dim=1).indices  # [B, k] most attended
        bottom = (
            attn.masked_fill(~mask, float("inf")).topk(k, dim=1, largest=False).indices
        )  # [B, k] least attended
        real = torch.arange(k, device=h.device).unsqueeze(0) < mask.sum(dim=1, keepdim=True)  # [B, k]
        picked = h.gather(
            1, torch.cat([top, bottom], dim=1).unsqueeze(-1).expand(-1, -1, width)
        )  # [B, 2k, H]
        logits = torch.stack([clf(picked) for clf in self.instance_classifiers], dim=2)  # [B, 2k, K, 2]

        is_top = torch.arange(2 * k, device=h.device) < k  # [2k]
        in_class = F.one_hot(label.clamp_min(0), self.n_classes).bool().unsqueeze(1)  # [B, 1, K]
        target = (
            is_top.view(1, -1, 1) & in_class
        ).long()  # [B, 2k, K]: in-class top -> 1, everything else -> 0
        real2 = torch.cat([real, real], dim=1).unsqueeze(-1)  # [B, 2k, 1]
        per_instance = self.instance_loss_fn(logits.reshape(-1, 2), target.reshape(-1)).view_as(
            target
        )  # fp32
        # in-class classifier: all 2k real instances; out-of-class ones: the top-k, and only when subtyping
        used = (real2 & (in_class | (is_top.view(1, -1, 1) & self.subtyping))).to(
            per_instance.dtype
        )  # [B, 2k, K]

        per_classifier = (per_instance * used).sum(dim=1) / used.sum(dim=1).clamp_min(1.0)  # [B, K]
        per_bag = per_classifier.sum(dim=1) / (self.n_classes if self.subtyping else 1)  # [B]
        labelled = label >= 0
        if not labelled.any():
            return (per_instance * 0.0).sum()
        return per_bag[labelled].mean()
