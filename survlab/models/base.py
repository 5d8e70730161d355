"""The network contract: what a network is told about the data (`ModalityDims`), what it needs
(`modalities`) and what it returns (`Prediction`).

Every network is a plain `nn.Module` (no Lightning, no I/O) built as `Net(dims=ModalityDims(...), **hparams)`
whose `forward(batch: Batch) -> Prediction`.

Outcome networks (survival / classification) follow one contract, MIL-Lab style (`OutcomeNet`): the architecture
implements `forward_features(batch) -> Features` (the patient embedding [B, E] + its attention maps), and its
outputs come from heads built by one shared constructor, `init_heads`, chosen by config:

    targets: [grade]      one classifier per patient label      -> class_logits[label] [B, K]
    survival: true        the primary endpoint's survival head  -> hazard_logits [B, n_bins] | risk [B]
    endpoints: [dfs]      one survival head per further endpoint -> endpoint_hazard_logits | endpoint_risk [name]

So every trunk (fusion, MIL or table network) can be trained for classification, survival, or several endpoints
at once from YAML. Example:
    >>> import torch
    >>> from survlab.data.sources.examples import random_batch
    >>> class Mean(OutcomeNet):
    ...     modalities = ("clinical",)
    ...     def __init__(self, dims, targets=(), survival=True, endpoints=()):
    ...         super().__init__(dims)
    ...         self.encoder = torch.nn.Linear(dims.clinical_dim, 8)   # the trunk first (keeps the RNG order)
    ...         self.init_heads(8, targets, survival, endpoints=endpoints)
    ...     def forward_features(self, batch):
    ...         return Features(self.encoder(batch.clinical))
    >>> dims = ModalityDims(clinical_dim=3, n_classes={"grade": 3}, endpoints=("os", "dfs"))
    >>> pred = Mean(dims, targets=["grade"], endpoints=["dfs"])(random_batch(dims))
    >>> pred.hazard_logits.shape, pred.class_logits["grade"].shape, pred.endpoint_hazard_logits["dfs"].shape
    (torch.Size([2, 4]), torch.Size([2, 3]), torch.Size([2, 4]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.data.dims import MODALITIES, ModalityDims  # noqa: F401  (re-exported: the network contract)
from survlab.models.heads import (
    OUTPUTS,
    ClassHeads,
    SurvivalHead,
    SurvivalHeads,
    resolve_endpoints,
    resolve_targets,
)
from survlab.models.precision import at_least_fp32


@dataclass
class Prediction:
    """What a network produces for a batch of B patients.

    hazard_logits [B, n_bins]: discrete-time hazard logits (MCAT convention, hazard = sigmoid(logit)).
    risk [B]: a Cox log-hazard (higher = worse). At least one of the two is set by survival networks.
    class_logits: label name -> [B, C] (patient level); slide_logits: label name -> [B, S, C] (slide level, slide j of
    patient b = the slide with Batch.slide_index == j, aligned with Batch.slide_labels); endpoint_hazard_logits /
    endpoint_risk: endpoint name -> [B, n_bins] / [B] for networks predicting several survival endpoints.
    horizon_logits: endpoint name (or "primary" for the primary endpoint) -> [B, H] for the H horizons of a
    `HorizonObjective` (in its order): logit k = the conditional hazard of the interval (h_{k-1}, h_k]; the
    objective cumulates them into P(event by h_k), non-decreasing in k (`HorizonObjective.probabilities`).
    aux_losses: name -> scalar, added to the task loss.
    attention: name -> tensor for interpretation, e.g. "patch" [B, N] (0 on padding), "pathway" [B, P],
    "topk" [B, k] (long indices). embedding [B, E]: the fused patient representation (optional).
    """

    hazard_logits: Tensor | None = None
    risk: Tensor | None = None
    class_logits: dict[str, Tensor] = field(default_factory=dict)
    slide_logits: dict[str, Tensor] = field(default_factory=dict)
    endpoint_hazard_logits: dict[str, Tensor] = field(default_factory=dict)
    endpoint_risk: dict[str, Tensor] = field(default_factory=dict)
    horizon_logits: dict[str, Tensor] = field(default_factory=dict)
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    attention: dict[str, Tensor] = field(default_factory=dict)
    embedding: Tensor | None = None


def survival_from_hazard_logits(hazard_logits: Tensor) -> Tensor:
    """S(t_k) = prod_{j<=k} (1 - h_j) for each bin k; [B, n_bins] -> [B, n_bins], at least fp32 (bf16 logits would
    give bf16 survival curves and tied risks)."""
    return torch.cumprod(1.0 - torch.sigmoid(at_least_fp32(hazard_logits)), dim=-1)


def risk_score(pred: Prediction) -> Tensor:
    """Scalar risk per patient [B] (higher = earlier event), at least fp32: Cox `risk` if given, else −Σ_k S(t_k)."""
    if pred.risk is not None:
        return at_least_fp32(pred.risk)
    if pred.hazard_logits is None:
        raise ValueError("Prediction has neither `risk` nor `hazard_logits`; a survival network must set one")
    return -survival_from_hazard_logits(pred.hazard_logits).sum(dim=-1)


class SurvivalNet(nn.Module):
    """Base class: subclasses set `modalities` (what they need) and implement forward(batch) -> Prediction.

    `accepts_absent`: the modalities ("wsi", "genomics", "pet") a patient may lack under data.missing=keep
    (`Batch.present` / `Batch.has`); the network then makes its output independent of that modality's placeholder
    (`survlab.models.blocks.AbsentModalities`) and documents how. Default: none (such patients are refused).
    """

    modalities: ClassVar[tuple[str, ...]] = ()
    accepts_absent: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, dims: ModalityDims) -> None:
        super().__init__()
        self.dims = dims
        missing = [m for m in self.modalities if m not in dims.provides]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs modalities {list(self.modalities)} but the cohort provides "
                f"{sorted(dims.provides) or 'none'} (missing: {missing}); pick a data config that has them"
            )


@dataclass
class Features:
    """What an outcome network's trunk computes for B patients (`OutcomeNet.forward_features`), before any head.

    embedding [B, E]: the patient representation every head reads. attention: name -> map for interpretation (as
    `Prediction.attention`). aux_losses: name -> scalar (as `Prediction.aux_losses`). extra: intermediate tensors an
    architecture's own heads read (e.g. MCAT's branch tokens for MCAT_GR's grade pooling); never reported.
    """

    embedding: Tensor
    attention: dict[str, Tensor] = field(default_factory=dict)
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class OutcomeNet(SurvivalNet):
    """Base of outcome networks: a trunk (`forward_features`) plus config-chosen heads from `init_heads`.

    Heads: `self.head` (SurvivalHead of the primary endpoint, or None), `self.class_heads` (ClassHeads, one per
    target label), `self.endpoint_heads` (SurvivalHeads, one per further endpoint). `forward` = `forward_features`
    then `predict`; an architecture with heads of its own (slide heads, a grade head with its own pooling)
    overrides `predict` and calls `super().predict(features)` first.

    `STATE_RENAMES` (old parameter prefix -> new) lets checkpoints written before a network moved to these heads
    load unchanged (e.g. GGMF's `head.weight` is now `head.linear.weight`).
    """

    STATE_RENAMES: ClassVar[Mapping[str, str]] = {}

    head: SurvivalHead | None
    class_heads: ClassHeads
    endpoint_heads: SurvivalHeads

    def __init__(self, dims: ModalityDims) -> None:
        super().__init__(dims)
        if self.STATE_RENAMES:
            self.register_load_state_dict_pre_hook(_rename_old_keys)

    def init_heads(
        self,
        in_dim: int,
        targets: Sequence[str] | None = (),
        survival: bool = True,
        output: str = "hazards",
        allow_empty: bool = False,
        endpoints: Sequence[str] | None = (),
    ) -> None:
        """Create the heads on embeddings [.., in_dim], in this order (the RNG draws of the initial weights): the
        primary survival head (if `survival`), one classifier per `targets` label (None = the cohort's primary
        label), one survival head per endpoint of `endpoints` (None = every endpoint after the primary; the primary
        itself, when listed, reuses the survival head). `allow_empty`: the subclass predicts something else (e.g.
        slide labels), so no head at all is fine."""
        name = type(self).__name__
        n_classes = resolve_targets(name, targets, self.dims.n_classes, self.dims.primary_label)
        extra = resolve_endpoints(name, endpoints, self.dims.endpoints)
        primary = self.dims.endpoints[0] if self.dims.endpoints else None
        own = tuple(e for e in extra if not (survival and e == primary))
        if not survival and not n_classes and not own and not allow_empty:
            raise ValueError(
                f"{name} predicts nothing: survival is false and no targets (cohort labels: "
                f"{list(self.dims.n_classes) or 'none'}); set model.net.survival=true or model.net.targets=[label]"
            )
        if output not in OUTPUTS:
            raise ValueError(f"{name}: output must be one of {OUTPUTS} (model.net.output), got {output!r}")
        self.head = SurvivalHead(in_dim, self.dims.n_bins, output) if survival else None
        self.class_heads = ClassHeads(in_dim, n_classes)
        self.endpoint_heads = SurvivalHeads(in_dim, self.dims.n_bins, own, output)
        self._primary_alias = primary if survival and primary in extra else None

    @property
    def targets(self) -> tuple[str, ...]:
        """Patient labels this network predicts (the keys of `Prediction.class_logits`)."""
        return tuple(self.class_heads.keys())

    def predict_heads(self, h: Tensor) -> dict[str, Any]:
        """Embedding [..., in_dim] -> Prediction keyword arguments: survival fields (if any), `class_logits` and
        the further endpoints' fields."""
        out: dict[str, Any] = dict(self.head(h)) if self.head is not None else {}
        out["class_logits"] = self.class_heads(h)
        if len(self.endpoint_heads) or self._primary_alias:
            per_endpoint = self.endpoint_heads(h)
            key = next(iter(per_endpoint))
            if self._primary_alias is not None:
                field_name = "hazard_logits" if key == "endpoint_hazard_logits" else "risk"
                per_endpoint[key] = {self._primary_alias: out[field_name], **per_endpoint[key]}
            out.update(per_endpoint)
        return out

    def forward_features(self, batch: Batch) -> Features:
        """The trunk: batch -> patient embedding [B, E] (+ attention maps, auxiliary losses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_features(batch) -> Features")

    def predict(self, features: Features) -> Prediction:
        """Features -> Prediction: every head on the embedding, attention and auxiliary losses passed through."""
        return Prediction(
            **self.predict_heads(features.embedding),
            attention=features.attention,
            aux_losses=features.aux_losses,
            embedding=features.embedding,
        )

    def forward(self, batch: Batch) -> Prediction:
        return self.predict(self.forward_features(batch))

    def encode(self, batch: Batch) -> Tensor:
        """Patient embedding [B, E]."""
        return self.forward_features(batch).embedding


class Denoiser(SurvivalNet):
    """Base of conditional denoisers (the diffusion task's networks, e.g. PathGen's): ε̂(x_t, t | context).

    `sizes`: the gene-group sizes n_g of the generated vector; `encode_context(batch)` -> (context tokens [B, N, d],
    mask [B, N] or None), computed once per batch by the samplers; `denoise(x_t, t, context, mask)`: G tensors
    [B·R, n_g] (R noisy copies per patient, patient-major), timesteps t [B·R] -> ε̂, G tensors [B·R, n_g].
    """

    sizes: tuple[int, ...]

    def encode_context(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement encode_context(batch)")

    def denoise(self, x_t: Sequence[Tensor], t: Tensor, context: Tensor, mask: Tensor | None) -> list[Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement denoise(x_t, t, context, mask)")

    def forward(self, x_t: Sequence[Tensor], t: Tensor, batch: Batch) -> list[Tensor]:  # type: ignore[override]
        context, mask = self.encode_context(batch)
        return self.denoise(x_t, t, context, mask)


class Segmentor(nn.Module):
    """Base of segmentation networks (the segmentation task's): image [B, 1, H, W] -> {mask name: logits
    [B, 1, H, W]} for each name of `MASKS` (logits: the loss and metrics apply the sigmoid).

    `dims` may be None (a segmentor loaded outside a cohort, e.g. `survlab imaging-cut`)."""

    modalities: ClassVar[tuple[str, ...]] = ()
    MASKS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dims: ModalityDims | None = None) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(image) -> mask logits")


def _rename_old_keys(module: OutcomeNet, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load-state-dict pre-hook: parameter names of older checkpoints -> today's (`OutcomeNet.STATE_RENAMES`)."""
    for old, new in module.STATE_RENAMES.items():
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            renamed = prefix + new + key[len(prefix + old) :]
            if renamed not in state_dict:
                state_dict[renamed] = state_dict.pop(key)
