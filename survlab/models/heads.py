"""Output heads of outcome networks, built by one constructor (`OutcomeNet.init_heads` in survlab/models/base.py):

    survival head   embedding [B, E] -> hazard_logits [B, n_bins] (NLL) or risk [B] (Cox)     `SurvivalHead`
    class heads     embedding [B, E] -> class_logits[label] [B, K_label], one per patient label `ClassHeads`
    endpoint heads  embedding [B, E] -> endpoint_hazard_logits / endpoint_risk[endpoint]     `SurvivalHeads`

Which heads a network has is config: `targets` (patient labels), `survival` (the primary endpoint), `endpoints`
(further survival endpoints, e.g. DFS beside OS). `resolve_targets` / `resolve_endpoints` check them against the
cohort (`ModalityDims`) with one-line errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from survlab.models.precision import FullPrecisionLinear

OUTPUTS = ("hazards", "risk")


class SurvivalHead(nn.Module):
    """Last layer of a survival network: embedding [B, H] -> the `Prediction` survival fields.

    output="hazards": {"hazard_logits": [B, n_bins]} (discrete-time NLL); output="risk": {"risk": [B]} (Cox
    log-hazard). Use as `Prediction(**head(h), embedding=h)`.
    """

    OUTPUTS = OUTPUTS

    def __init__(self, in_dim: int, n_bins: int, output: str = "hazards") -> None:
        super().__init__()
        if output not in self.OUTPUTS:
            raise ValueError(f"SurvivalHead output must be one of {self.OUTPUTS}, got {output!r}")
        self.output = output
        self.linear = FullPrecisionLinear(in_dim, n_bins if output == "hazards" else 1)  # fp32 under autocast

    def forward(self, h: Tensor) -> dict[str, Tensor]:
        out = self.linear(h)
        return {"hazard_logits": out} if self.output == "hazards" else {"risk": out.squeeze(-1)}


class ClassHeads(nn.ModuleDict):
    """One linear classifier per patient label: embedding [..., in_dim] -> {label: logits [..., K_label]}.

    The head name IS the label name (`Prediction.class_logits[label]`); logits are fp32 under autocast, like the
    survival head. Works on patient embeddings [B, H] and on patch embeddings [B, N, H] alike.
    """

    def __init__(self, in_dim: int, n_classes: dict[str, int]) -> None:
        super().__init__({label: FullPrecisionLinear(in_dim, k) for label, k in n_classes.items()})

    def forward(self, h: Tensor) -> dict[str, Tensor]:
        return {label: head(h) for label, head in self.items()}


class SurvivalHeads(nn.ModuleDict):
    """One `SurvivalHead` per further survival endpoint: embedding [B, H] -> {"endpoint_hazard_logits": {name:
    [B, n_bins]}} (output="hazards") or {"endpoint_risk": {name: [B]}} (output="risk")."""

    def __init__(self, in_dim: int, n_bins: int, endpoints: Sequence[str], output: str = "hazards") -> None:
        super().__init__({e: SurvivalHead(in_dim, n_bins, output) for e in endpoints})
        self.output = output

    def forward(self, h: Tensor) -> dict[str, dict[str, Tensor]]:
        key, field = (
            ("endpoint_hazard_logits", "hazard_logits")
            if self.output == "hazards"
            else ("endpoint_risk", "risk")
        )
        return {key: {e: head(h)[field] for e, head in self.items()}}


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
    _check_names(
        owner, "targets", names, list(n_classes), "patient labels", "the data config's labels", "label"
    )
    bad = {t: n_classes[t] for t in names if n_classes[t] < 2 or "." in t}
    if bad:
        raise ValueError(
            f"{owner} targets {bad} need >= 2 classes and a name without '.'; fix the data config's labels"
        )
    return {t: n_classes[t] for t in names}


def _check_names(
    owner: str, key: str, names: list[str], have: list[str], what: str, declared: str, one: str
) -> None:
    """One-line ValueError for a name of model.net.<key> the cohort does not have (`have`: its `what`, declared in
    `declared`), or one named twice."""
    unknown = [n for n in names if n not in have]
    if unknown:
        verb = "add them to" if key == "targets" else "declare them under"
        raise ValueError(
            f"{owner} {key} {unknown} are not {what} of the cohort (it has {have or 'none'}); "
            f"set model.net.{key} to some of them or {verb} {declared}"
        )
    if len(set(names)) != len(names):
        raise ValueError(
            f"{owner} {key} {names} name a{'n' if one[0] in 'aeiou' else ''} {one} twice; list each {one} once"
        )


def resolve_endpoints(owner: str, endpoints: Sequence[str] | None, cohort: Sequence[str]) -> tuple[str, ...]:
    """Survival endpoints given their own head, in the order given (None = every endpoint of the cohort after the
    primary one). An endpoint the cohort does not have, or one named twice, is a one-line ValueError."""
    names = tuple(cohort[1:]) if endpoints is None else tuple(str(e) for e in endpoints)
    _check_names(
        owner, "endpoints", list(names), list(cohort), "survival endpoints", "data.endpoints", "endpoint"
    )
    return names


__all__ = ["OUTPUTS", "ClassHeads", "SurvivalHead", "SurvivalHeads", "resolve_endpoints", "resolve_targets"]
