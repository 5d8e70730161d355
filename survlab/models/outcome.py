"""Which outcomes a network predicts, chosen by its config: a survival head and/or patient classification heads.

A network config names its targets: `targets: [subtype, grade]` adds one linear head per patient label
(`Prediction.class_logits[label]` [B, K_label], K from `dims.n_classes`); `targets: null` means every patient label
the cohort has; `survival: true` adds today's survival head (`hazard_logits` [B, n_bins] or Cox `risk` [B]).

Example:
    >>> class Net(OutcomeNet):
    ...     def __init__(self, dims, targets=None, survival=False):
    ...         super().__init__(dims)
    ...         self.encoder = ...                       # build the trunk first (keeps the RNG order of old nets)
    ...         self.init_heads(64, targets, survival)   # then self.head / self.class_heads
    ...     def forward(self, batch):
    ...         h = self.encoder(batch)                  # [B, 64]
    ...         return Prediction(**self.predict_heads(h), embedding=h)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from survlab.models.base import SurvivalNet
from survlab.models.blocks import ClassHeads, SurvivalHead


def resolve_targets(
    owner: str, targets: Sequence[str] | None, n_classes: dict[str, int], primary: str | None = None
) -> dict[str, int]:
    """Patient labels a network predicts -> {label: K} in the order given (None = the cohort's primary label, or
    every label when it has no primary one: a head no objective trains would be dead weight, and DDP refuses it).

    A name the cohort does not have, a repeated name or a label with fewer than 2 classes is a one-line ValueError.
    """
    if targets is None:
        names = [primary] if primary in n_classes else list(n_classes)
    else:
        names = [str(t) for t in targets]
    unknown = [t for t in names if t not in n_classes]
    if unknown:
        raise ValueError(
            f"{owner} targets {unknown} are not patient labels of the cohort (it has {list(n_classes) or 'none'}); "
            f"set model.net.targets to some of them or add them to the data config's labels"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{owner} targets {names} name a label twice; list each label once")
    bad = {t: n_classes[t] for t in names if n_classes[t] < 2 or "." in t}
    if bad:
        raise ValueError(
            f"{owner} targets {bad} need >= 2 classes and a name without '.'; fix the data config's labels"
        )
    return {t: n_classes[t] for t in names}


class OutcomeNet(SurvivalNet):
    """Base for networks with config-chosen outputs: `self.head` (SurvivalHead or None) and `self.class_heads`.

    Subclasses build their trunk, then call `init_heads(in_dim, targets, survival, output)`, and turn an embedding
    into the `Prediction` fields with `predict_heads(h)`.
    """

    head: SurvivalHead | None
    class_heads: ClassHeads

    def init_heads(
        self,
        in_dim: int,
        targets: Sequence[str] | None,
        survival: bool,
        output: str = "hazards",
        allow_empty: bool = False,
    ) -> None:
        """Create the survival head (if `survival`) and one classifier per target label on embeddings [.., in_dim]
        (`allow_empty`: the subclass predicts something else, e.g. slide labels)."""
        name = type(self).__name__
        n_classes = resolve_targets(name, targets, self.dims.n_classes, self.dims.primary_label)
        if not survival and not n_classes and not allow_empty:
            raise ValueError(
                f"{name} predicts nothing: survival is false and no targets (cohort labels: "
                f"{list(self.dims.n_classes) or 'none'}); set model.net.survival=true or model.net.targets=[label]"
            )
        self.head = SurvivalHead(in_dim, self.dims.n_bins, output) if survival else None
        self.class_heads = ClassHeads(in_dim, n_classes)

    @property
    def targets(self) -> tuple[str, ...]:
        """Patient labels this network predicts (the keys of `Prediction.class_logits`)."""
        return tuple(self.class_heads.keys())

    def predict_heads(self, h: Tensor) -> dict[str, Any]:
        """Embedding [..., in_dim] -> Prediction keyword arguments: survival fields (if any) and `class_logits`."""
        out: dict[str, Any] = dict(self.head(h)) if self.head is not None else {}
        out["class_logits"] = self.class_heads(h)
        return out


__all__ = ["OutcomeNet", "resolve_targets"]
