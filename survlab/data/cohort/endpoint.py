"""`Endpoint`: one survival endpoint of a cohort table (name, time column, censorship or event column) and how a
data config names it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """Which columns hold the outcome. Exactly one of `censorship_col` (1 = censored) / `event_col` (1 = event)."""

    name: str = "os"
    time_col: str = "survival_months"
    censorship_col: str | None = "censorship"
    event_col: str | None = None

    @classmethod
    def resolve(
        cls,
        endpoint: str = "os",
        time_col: str = "survival_months",
        censorship_col: str | None = "censorship",
        event_col: str | None = None,
        endpoints: dict[str, dict[str, str]] | None = None,
    ) -> Endpoint:
        """`os` uses the given columns; other names use `endpoints[name]` or `<name>_months` / `<name>_censorship`."""
        if endpoints and endpoint in endpoints:
            spec = dict(endpoints[endpoint])
            return cls(
                name=endpoint,
                time_col=spec["time"],
                censorship_col=spec.get("censorship"),
                event_col=spec.get("event"),
            )
        if endpoint.lower() == "os":
            if event_col is not None:
                censorship_col = None
            return cls(endpoint, time_col, censorship_col, event_col)
        return cls(endpoint, f"{endpoint.lower()}_months", f"{endpoint.lower()}_censorship", None)

    @property
    def outcome_cols(self) -> list[str]:
        return [self.time_col, self.censorship_col or self.event_col]  # type: ignore[list-item]
