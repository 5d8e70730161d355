"""MCAT_GR (PathGen, Dey et al. 2025): MCAT with a grade head — discrete-time survival + grade from WSI + genomics.

Built on `survlab.models.mcat.MCAT` (encoders, co-attention, both transformer branches, fusion, survival head: all
inherited). Added: a grade head with its OWN gated attention pooling over the (transformer-encoded) genomics-guided
path tokens [B, G, d] → Linear+ReLU+Dropout → Linear → `class_logits["grade"]` [B, n_grade]. The loss (0.3 · NLL +
0.7 · CE, standard NLL indexing) is the task's: `conf/model/mcat_gr.yaml` composes survlab's SurvivalObjective and
ClassificationObjective. Genomics may be real or synthetic (PathGen stage 1) at evaluation: the network cannot tell.

Spec deviations (docs/specs/pathgen.md; kept, documented — changing them would change the published PathGen numbers):
- the WSI patches go through MCAT's projection Linear(D → dim) + ReLU + Dropout (`wsi_proj`, inherited) before the
  co-attention; the spec's co-attention reads the patch embeddings as they are (K = V = patches [N, 1024], D = dim).
  With D ≠ dim (any encoder other than a 1024-d one at the reference width) a projection is needed anyway.
- genomics are z-scored per gene (`data.genomics.scaling: standard`, fitted on the training patients) for this stage;
  the spec min-max scales every group (the generator of stage 1 does: `pipeline.generator.scaling: minmax`). Set
  `data.genomics.scaling=minmax` for the spec's scaling in stage 2 as well.

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(wsi_dim=32, genomic_sizes=(12, 20, 20, 20, 30, 18), n_classes={"grade": 4})
    >>> net = MCATGR(dims)
    >>> pred = net(random_batch(dims))
    >>> pred.hazard_logits.shape, pred.class_logits["grade"].shape   # [B, 4], [B, 4]
    (torch.Size([2, 4]), torch.Size([2, 4]))
"""

from __future__ import annotations

from typing import Any, ClassVar

from survlab.models.base import Features, ModalityDims, Prediction
from survlab.models.blocks import GatedAttentionPool, mlp
from survlab.models.heads import ClassHeads
from survlab.models.mcat import MCAT, MCATBranches


class MCATGR(MCAT):
    """MCAT + grade head (`grade_label` of the cohort, e.g. "grade"); other hparams as MCAT.

    Accepts no absent modality (its grade head pools the WSI-guided path tokens, which have no absent stand-in)."""

    accepts_absent: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, dims: ModalityDims, grade_label: str = "grade", **mcat: Any) -> None:
        super().__init__(dims, **mcat)
        if grade_label not in dims.n_classes:
            raise ValueError(
                f"MCATGR: grade_label {grade_label!r} is not a patient label of the cohort (labels: "
                f"{list(dims.n_classes) or 'none'}); declare it in the data config's labels or set "
                f"model.net.grade_label"
            )
        if grade_label in self.targets:
            raise ValueError(
                f"MCATGR: {grade_label!r} has its own grade head (grade_label); leave it out of model.net.targets"
            )
        dropout = float(mcat.get("dropout", 0.25))
        self.grade_label = grade_label
        self.grade_pool = GatedAttentionPool(self.dim, hidden=self.dim, dropout=dropout)
        self.grade_rho = mlp([self.dim, self.dim], dropout=dropout)
        self.grade_head = ClassHeads(self.dim, {grade_label: dims.n_classes[grade_label]})

    def predict(self, features: Features) -> Prediction:
        """MCAT's heads on the fused embedding, the grade head on its own pooling of the path tokens."""
        pred = super().predict(features)
        branches: MCATBranches = features.extra["branches"]
        pooled, weights = self.grade_pool(branches.path_tokens)
        pred.class_logits.update(self.grade_head(self.grade_rho(pooled)))
        pred.attention["grade_path_tokens"] = weights
        return pred


__all__ = ["MCATGR"]
