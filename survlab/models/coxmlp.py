"""CoxMLP: a DeepSurv-style MLP over the concatenated standardised genes and encoded clinical columns (whichever the
cohort has) -> one Cox log-hazard per patient (Katzman et al. 2018), trained with the Cox partial likelihood.

    genomics [B, Σg] ‖ clinical [B, C] → (Linear → ReLU → Dropout) × len(hidden) → Linear → risk [B]

The same trunk classifies patient labels (`targets`) or predicts further endpoints (`endpoints`, e.g. DFS beside OS):
heads from `OutcomeNet.init_heads`.

Absent genomics (data.missing=keep; `accepts_absent` = genomics): the standardised gene block of a patient without
expression is replaced by a learned absent vector [Σg] (initialised near 0, the training mean of z-scored genes)
before the MLP; clinical is a row every patient has. Optional modality dropout in training (`modality_dropout`).

Example:
    >>> from survlab.data.dims import ModalityDims
    >>> net = CoxMLP(ModalityDims(genomic_sizes=(76,), clinical_dim=5), hidden=(32,))
    >>> net.inputs, net.encoder[0].in_features
    (('genomics', 'clinical'), 81)
    >>> net(batch).risk.shape  # [B]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import ClassVar

from survlab.data.batch import Batch
from survlab.models.base import Features, ModalityDims, OutcomeNet
from survlab.models.blocks import AbsentModalities, mlp
from survlab.models.tabular import TABLE_MODALITIES, table_features, table_inputs, table_width


class CoxMLP(OutcomeNet):
    """Table outcome network on genes + clinical (no slides).

    Args:
        dims: cohort sizes (`genomic_sizes` and/or `clinical_dim`).
        hidden: hidden widths (empty = a linear Cox model trained by gradient descent).
        dropout: dropout after each hidden layer.
        output: "risk" (Cox log-hazard [B], with task.loss=cox; the default) or "hazards" ([B, n_bins], NLL).
        inputs: table modalities to read (default: every one the cohort has, genomics then clinical).
        targets: patient labels to classify (`class_logits[label]` [B, K]); default none; None = the primary label.
        survival: predict the primary endpoint (the default; the head keeps its parameter names `head.linear.*`).
        endpoints: further survival endpoints, one head each (`endpoint_hazard_logits` / `endpoint_risk`), e.g.
            [dfs] beside OS; None = every endpoint of the cohort after the primary.
        modality_dropout: training only, the probability that a patient's genomics is treated as absent (when
            clinical is not read too, a patient's only modality is never dropped); 0 = off.

    A patient without genomics (`Batch.has`) gets the learned absent vector in place of its gene block.
    """

    modalities: ClassVar[tuple[str, ...]] = ()
    accepts_absent: ClassVar[frozenset[str]] = frozenset({"genomics"})
    table_modalities: ClassVar[tuple[str, ...]] = TABLE_MODALITIES

    def __init__(
        self,
        dims: ModalityDims,
        hidden: Sequence[int] = (32,),
        dropout: float = 0.1,
        output: str = "risk",
        inputs: Sequence[str] | None = None,
        targets: Sequence[str] | None = (),
        survival: bool = True,
        endpoints: Sequence[str] | None = (),
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        self.inputs = table_inputs(
            type(self).__name__, dims, tuple(inputs) if inputs else self.table_modalities
        )
        widths = [int(h) for h in hidden]
        in_dim = table_width(dims, self.inputs)
        self.encoder = mlp([in_dim, *widths], dropout=dropout)
        self.init_heads(widths[-1] if widths else in_dim, targets, survival, output, endpoints=endpoints)
        genes = {"genomics": (sum(dims.genomic_sizes or ()),)} if "genomics" in self.inputs else {}
        self.absent = AbsentModalities(  # last: draws nothing from the global RNG (see AbsentModalities)
            genes, self.accepts_absent, modality_dropout, anchored="clinical" in self.inputs, owner="CoxMLP"
        )

    def forward_features(self, batch: Batch) -> Features:
        """Patient embedding [B, hidden[-1]] (the input row itself when hidden is empty)."""
        block = partial(self.absent, present=self.absent.presence(batch))
        return Features(self.encoder(table_features(batch, self.inputs, block)))
