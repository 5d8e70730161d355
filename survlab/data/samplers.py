"""Training sampler whose draws are a pure function of (seed, epoch): resumed runs repeat the uninterrupted run.

`EpochSampler` yields `(index, epoch)` keys. The permutation (or the weighted draw with replacement) of epoch e is
seeded by (seed, e) from its own generator, never the global RNG, and the epoch travels with every index to the
dataset (also into DataLoader worker processes), which seeds each patient's patch subset by (seed, epoch, case_id).
So the samples of epoch e do not depend on what ran before it, on the number of workers, or on when Lightning
creates the DataLoader iterator (for a resumed run: before `on_train_epoch_start`).

Length bucketing (`lengths` + `batch_size`): the epoch's draw is cut into chunks of `bucket_batches` batches, each
chunk sorted by bag length and cut into batches, and the full batches shuffled (seeded by (seed, epoch)); the one
partial batch stays last so the DataLoader's batch boundaries are the bucket boundaries. A batch then pads its bags
to a length close to each of them instead of to the longest bag of a random batch. `LengthOrderSampler` does the same
for evaluation without randomness (longest first; predictions are keyed by patient, so order does not matter).

Resuming with DataLoader workers: a worker-backed DataLoader draws its first indices as soon as its iterator is
created, and Lightning may create the training iterator before it restores the loop state from the checkpoint
(`configure_optimizers` counting the steps per epoch does, so a resumed run used to replay epoch 0's order).
`EpochLoader`, the training DataLoader, therefore starts its real iterator only when the first batch is fetched,
when `trainer.current_epoch` is the restored one, and skips the batches of that epoch the trainer had already
finished (none when the checkpoint was written at the end of an epoch, as survlab's `last.ckpt` is).

Example:
    >>> s = EpochSampler(5, seed=0, epoch_fn=lambda: 3)
    >>> sorted(i for i, _ in s), {e for _, e in s}
    ([0, 1, 2, 3, 4], {3})
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["EpochLoader", "EpochSampler", "LengthOrderSampler", "bucket_order", "epoch_generator"]


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    """A CPU generator seeded by (seed, epoch, salt) only."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) * 7_919 + int(salt))


def bucket_order(
    order: list[int],
    lengths: Sequence[int],
    batch_size: int,
    bucket_batches: int,
    gen: torch.Generator | None,
) -> list[int]:
    """`order` regrouped so that each run of `batch_size` items holds bags of similar length (see module doc).
    gen None: no shuffling of the batches (evaluation)."""
    chunk = max(1, int(bucket_batches)) * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: (-lengths[i], i))
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    partial = [b for b in batches if len(b) < batch_size]
    if gen is not None:
        full = [full[k] for k in torch.randperm(len(full), generator=gen).tolist()]
    return [i for b in full + partial for i in b]


class LengthOrderSampler(Sampler[int]):
    """Evaluation order: all patients, longest bag first (ties by index), so each batch pads little."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)


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
        lengths: Sequence[int] | None = None,
        batch_size: int = 1,
        bucket_batches: int = 8,
    ) -> None:
        self.n, self.seed, self.epoch_fn, self.epoch = int(n), int(seed), epoch_fn, 0
        self._skip = 0  # items of the epoch's order the next iteration leaves out (a resumed epoch), then 0
        self.lengths, self.batch_size, self.bucket_batches = lengths, int(batch_size), int(bucket_batches)
        if lengths is not None and len(lengths) != self.n:
            raise ValueError(f"EpochSampler: {len(lengths)} lengths for {self.n} items")
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        if self.weights is not None and len(self.weights) != self.n:
            raise ValueError(f"EpochSampler: {len(self.weights)} weights for {self.n} items")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip_next(self, items: int) -> None:
        """Make the next iteration start `items` into its epoch's order (the order itself is unchanged)."""
        self._skip = max(0, int(items))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.epoch_fn()) if self.epoch_fn is not None else self.epoch
        skip, self._skip = self._skip, 0
        gen = epoch_generator(self.seed, epoch)
        if self.weights is None:
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=gen)
        order = order.tolist()
        if self.lengths is not None and self.batch_size > 1:
            order = bucket_order(order, self.lengths, self.batch_size, self.bucket_batches, gen)
        for i in order[skip:]:
            yield i, epoch


class EpochLoader(DataLoader):
    """The training DataLoader over an `EpochSampler`: its iterator starts (workers, first draws) at the first
    `next()`, not at `iter()`, and then skips the epoch's first `batches_done()` batches (see module doc).

    batches_done: returns how many batches of the current epoch the trainer has already finished (0 in a fresh
    epoch; k when the run resumed from a checkpoint written after batch k of the epoch)."""

    def __init__(self, *args: Any, batches_done: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # deferred start: a plain iterator on purpose
        return _DeferredIterator(self._start)

    def _start(self) -> Iterator[Any]:
        done = int(self.batches_done()) if self.batches_done is not None else 0
        if done and isinstance(self.sampler, EpochSampler):
            self.sampler.skip_next(done * int(self.batch_size or 1))
        return super().__iter__()


class _DeferredIterator(Iterator[Any]):
    """An iterator that calls `start()` for the real one at its first `next()`."""

    def __init__(self, start: Callable[[], Iterator[Any]]) -> None:
        self._start = start
        self._it: Iterator[Any] | None = None

    def __iter__(self) -> _DeferredIterator:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = self._start()
        return next(self._it)
