"""Training sampler whose draws are a pure function of (seed, epoch): resumed runs repeat the uninterrupted run.

`EpochSampler` yields `(index, epoch)` keys. The permutation (or the weighted draw with replacement) of epoch e is
seeded by (seed, e) from its own generator, never the global RNG, and the epoch travels with every index to the
dataset (also into DataLoader worker processes), which seeds each patient's patch subset by (seed, epoch, case_id).
So the samples of epoch e do not depend on what ran before it, on the number of workers, or on when Lightning
creates the DataLoader iterator (for a resumed run: before `on_train_epoch_start`).

Example:
    >>> s = EpochSampler(5, seed=0, epoch_fn=lambda: 3)
    >>> sorted(i for i, _ in s), {e for _, e in s}
    ([0, 1, 2, 3, 4], {3})
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Sampler

__all__ = ["EpochSampler", "epoch_generator"]


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    """A CPU generator seeded by (seed, epoch, salt) only."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) * 7_919 + int(salt))


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffled (or, with `weights`, weighted with replacement) indices 0..n-1 for the current epoch.

    n: dataset size; epoch_fn: returns the epoch being run (read when iteration starts, i.e. at the first batch);
    `set_epoch` (called by Lightning each epoch) overrides it when no epoch_fn is given.
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        weights: Sequence[float] | torch.Tensor | None = None,
        epoch_fn: Callable[[], int] | None = None,
    ) -> None:
        self.n, self.seed, self.epoch_fn, self.epoch = int(n), int(seed), epoch_fn, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        if self.weights is not None and len(self.weights) != self.n:
            raise ValueError(f"EpochSampler: {len(self.weights)} weights for {self.n} items")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.epoch_fn()) if self.epoch_fn is not None else self.epoch
        gen = epoch_generator(self.seed, epoch)
        if self.weights is None:
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=gen)
        for i in order.tolist():
            yield i, epoch
