"""DataLoader settings and samplers of a cohort's parts: workers / pinning chosen for the machine, seeded epoch
draws (optionally class- or event-balanced, optionally bucketed by bag length), padded `Batch`es.

    >>> choose_loader("auto", "auto", cuda=False)["pin_memory"], choose_loader(2, True, cuda=False)["num_workers"]
    (False, 2)
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from survlab.data.batch import collate
from survlab.data.dataset import PatientDataset
from survlab.data.samplers import EpochLoader, EpochSampler, LengthOrderSampler

log = logging.getLogger("survlab.data.datamodule")  # the run log names the data module

#: most DataLoader workers `num_workers: auto` starts per training process
MAX_AUTO_WORKERS = 4


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask: a SLURM / cgroup allocation, not the whole node)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_loader(
    num_workers: int | str, pin_memory: bool | str, devices: int = 1, cuda: bool | None = None
) -> dict[str, Any]:
    """The DataLoader settings for this machine: `num_workers: auto` -> none on 2 cores or fewer per training
    process (a worker competes with training for the same cores: slower, experiments/throughput), else
    cores / processes - 1, at most MAX_AUTO_WORKERS (Lightning's suggested bound, so it does not warn);
    `pin_memory: auto` -> pinned only when training runs on a CUDA device (`cuda`; None: whether torch sees one).
    Values the user set are kept. Workers never change the numbers: every random draw of a batch is seeded by
    (seed, epoch, patient) (survlab.data.dataset), not by the worker."""
    cpus = usable_cpus()
    per_process = cpus // max(1, int(devices))
    chosen = []
    if num_workers == "auto":
        workers = 0 if per_process <= 2 else min(MAX_AUTO_WORKERS, per_process - 1)
        chosen.append("num_workers")
    else:
        workers = int(num_workers)
    has_cuda = bool(torch.cuda.is_available() if cuda is None else cuda)
    if pin_memory == "auto":
        pin = has_cuda
        chosen.append("pin_memory")
    else:
        pin = bool(pin_memory)
    return {
        "num_workers": workers,
        "pin_memory": pin,
        "auto": chosen,
        "cpus": cpus,
        "processes": max(1, int(devices)),
        "cuda": has_cuda,
    }


def check_loader_option(key: str, value: Any, kind: type) -> int | bool | str:
    """`data.num_workers` (an integer >= 0 or auto) / `data.pin_memory` (true, false or auto), else a one-line error."""
    if value == "auto":
        return "auto"
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    allowed = "an integer >= 0" if kind is int else "true or false"
    raise ValueError(f"data.{key}={value!r}: use {allowed}, or auto (chosen from this machine's cores / GPU)")


def sampling_weights(ds: PatientDataset, survival: bool, label: str | None) -> list[float]:
    """Inverse-frequency draw weights [len(ds)] for `weighted_sampling` (drawn with replacement): over (time bin x
    censorship) for a survival cohort; over the classes of `label` otherwise (CLAM's class-balanced
    --weighted_sample; patients missing that label form a group of their own)."""
    if survival:
        keys: list[Any] = list(zip(ds.time_bins.tolist(), ds.rows["event"].tolist(), strict=True))
    elif label is None:
        raise ValueError("weighted_sampling of a cohort without survival needs a label (data.labels)")
    else:
        keys = [ds.sources.labels[label][case] for case in ds.case_ids]
    counts = Counter(keys)
    return [1.0 / counts[k] for k in keys]


def bag_lengths(
    ds: PatientDataset, slide_patches: dict[str, int] | None, cap: int | None
) -> list[int] | None:
    """Patches each patient's bag will have in a batch (after the cap `cap`), for bucketing; None without bags."""
    if not slide_patches:
        return None
    full = [sum(slide_patches[s] for s in slides) for slides in ds.rows["slide_ids"]]
    return [min(n, cap) if cap else n for n in full]


def make_loader(
    ds: PatientDataset,
    batch_size: int,
    workers: dict[str, Any],
    seed: int,
    lengths: list[int] | None,
    train: bool = False,
    weights: list[float] | None = None,
    epoch_fn: Callable[[], int] | None = None,
    batches_done: Callable[[], int] | None = None,
    bucket_batches: int = 8,
) -> DataLoader:
    """The loader of one part: training draws are a function of (seed, epoch) only (EpochSampler; a resumed run
    repeats the uninterrupted one), evaluation keeps the table order (or length order with bucketing)."""
    sampler: Any = None
    if train:
        sampler = EpochSampler(
            len(ds),
            seed,
            weights,
            epoch_fn=epoch_fn,
            lengths=lengths,
            batch_size=batch_size,
            bucket_batches=bucket_batches,
        )
    elif lengths is not None:
        sampler = LengthOrderSampler(lengths)
    # a last batch of 1 breaks BatchNorm and makes the Cox loss zero: drop it only then
    drop_last = train and len(ds) > batch_size and len(ds) % batch_size == 1
    # training: a loader that draws at the first batch (not when Lightning creates its iterator, which a resumed
    # run does before restoring the epoch), so a resumed run draws what the uninterrupted one did, with workers
    extra: dict[str, Any] = {"batches_done": batches_done} if train else {}
    return (EpochLoader if train else DataLoader)(
        ds,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=collate,
        **workers,
        # worker base seeds come from this generator, not the global RNG (which seeds dropout per epoch)
        generator=torch.Generator().manual_seed(seed),
        **extra,
    )


class PartLoaders:
    """The DataLoaders of a set-up data module's parts (mixed into CohortDataModule): seeded epoch draws of the
    training part (optionally weighted, bucketed by bag length, resumable mid-epoch), evaluation loaders of the
    others, with workers / pinning chosen once per run for the machine (`choose_loader`)."""

    name: str
    datasets: dict[str, PatientDataset]
    batch_size: int
    eval_batch_size: int
    seed: int
    bucketing: bool
    bucket_batches: Any
    max_patches: int | None
    eval_max_patches: int | None
    weighted_sampling: bool
    has_survival: bool
    loader_choice: dict[str, Any] | None
    loader_options: dict[str, Any]

    @property
    def primary_label(self) -> str | None:
        raise NotImplementedError

    def _need_setup(self) -> None:
        raise NotImplementedError

    def _dataset(self, part: str, train: bool | None = None) -> PatientDataset:
        raise NotImplementedError

    def _current_epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def _batches_done(self) -> int:
        """Training batches of the current epoch the trainer has already finished (> 0 only in an epoch resumed
        from a checkpoint written inside it); 0 outside fitting."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or not getattr(trainer, "training", False):
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)

    def _bag_lengths(self, ds: PatientDataset, train: bool) -> list[int] | None:
        """Patches each patient's bag will have in a batch, for bucketing; None when bucketing is off or no bags."""
        if not self.bucketing:
            return None
        cap = self.max_patches if train else self.eval_max_patches
        return bag_lengths(ds, getattr(self, "slide_patches", None), cap)

    def _loader(self, part: str, batch_size: int, train: bool) -> DataLoader:
        ds = self.datasets[part]
        weights = None
        if train and self.weighted_sampling:
            weights = sampling_weights(ds, self.has_survival, self.primary_label)
        return make_loader(
            ds,
            batch_size,
            self._worker_kwargs(persistent=True),
            self.seed,
            self._bag_lengths(ds, train),
            train=train,
            weights=weights,
            epoch_fn=self._current_epoch,
            batches_done=self._batches_done,
            bucket_batches=self.bucket_batches,
        )

    @property
    def num_workers(self) -> int:
        """DataLoader workers of this run (`auto` resolved for this machine, survlab.data.loaders.choose_loader)."""
        return int(self._loader_settings()["num_workers"])

    @property
    def pin_memory(self) -> bool:
        return bool(self._loader_settings()["pin_memory"])

    def _loader_settings(self) -> dict[str, Any]:
        """The loader choice, made once per run (logged, and recorded in protocol.json under cohort.loader)."""
        if self.loader_choice is None:
            trainer = getattr(self, "trainer", None)
            devices = int(getattr(trainer, "num_devices", 1) or 1) if trainer is not None else 1
            cuda = type(trainer.accelerator).__name__ == "CUDAAccelerator" if trainer is not None else None
            opts = self.loader_options
            choice = choose_loader(opts["num_workers"], opts["pin_memory"], devices, cuda)
            choice["persistent_workers"] = bool(opts["persistent_workers"]) and choice["num_workers"] > 0
            self.loader_choice = choice
            if choice["auto"]:
                log.info(
                    "data loader: num_workers=%d, pin_memory=%s (auto: %d usable CPU cores, %d training process(es), "
                    "%s; set data.num_workers / data.pin_memory to override)",
                    choice["num_workers"],
                    str(choice["pin_memory"]).lower(),
                    choice["cpus"],
                    choice["processes"],
                    "CUDA" if choice["cuda"] else "no CUDA device",
                )
        return self.loader_choice

    def _worker_kwargs(self, persistent: bool) -> dict[str, Any]:
        choice = self._loader_settings()
        kwargs = {"num_workers": choice["num_workers"], "pin_memory": choice["pin_memory"]}
        if persistent:
            kwargs["persistent_workers"] = choice["persistent_workers"]
        return kwargs

    def train_dataloader(self) -> DataLoader:
        self._need_setup()
        return self._loader("train", self.batch_size, train=True)

    def train_eval_dataloader(self) -> DataLoader:
        """The TRAINING patients in evaluation mode (full bags or the fixed eval subset, no shuffling): for
        quantities fitted on training predictions, e.g. the Breslow baseline hazard of Cox models."""
        self._need_setup()
        ds = self._dataset("train", train=False)
        lengths = self._bag_lengths(ds, train=False)
        return DataLoader(
            ds,
            batch_size=self.eval_batch_size,
            shuffle=False,
            collate_fn=collate,
            sampler=None if lengths is None else LengthOrderSampler(lengths),
            **self._worker_kwargs(persistent=False),
        )

    def calibration_dataloader(self) -> DataLoader:
        """The fold's calibration patients (carved from its training part) in evaluation mode."""
        self._need_setup()
        if "calibration" not in self.datasets:
            raise ValueError(
                f"data={self.name}: no calibration part; set data.splits.calibration_fraction > 0 (e.g. 0.2)"
            )
        return self._loader("calibration", self.eval_batch_size, train=False)

    def val_dataloader(self) -> DataLoader:
        self._need_setup()
        return self._loader("val", self.eval_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        self._need_setup()
        return self._loader("test", self.eval_batch_size, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
