"""CT stacks as slices (MM-DLS imaging): the PNG slices of a stack folder in natural-sort order, checked (8-bit,
consecutive slice numbers, one size) and read to uint8 [N, H, W]; then resized to [N, size, size] in [0, 1] and
brought to a fixed number of slices with a mask (`fix_length`).

    >>> stack, mask = fix_length(np.zeros((3, 4, 4), np.float32), 5)
    >>> stack.shape, mask.tolist()
    ((5, 4, 4), [True, True, True, False, False])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from survlab.data.cohort.checks import DataFileError


def natural_key(name: str) -> list[Any]:
    """Sort key that orders 'slice2.png' before 'slice10.png' (numbers compared as numbers)."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def list_slices(folder: Path) -> list[Path]:
    """PNG files of a stack folder in natural-sort order of their names ([] when the folder is absent)."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()),
        key=lambda p: natural_key(p.name),
    )


# PIL modes of 8-bit slices (what a windowed export holds); 16-bit / 32-bit / float modes hold other value ranges
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")


def check_bit_depth(path: Path) -> None:
    """A PNG slice must be 8-bit (values 0..255 of a windowed export): a 16-bit (or 32-bit / float) PNG would be
    clipped to 8 bits and windowed as if it were one, so its intensities would silently differ. Header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
    except Exception as err:  # noqa: BLE001 - any decoder error becomes one line naming the file
        raise DataFileError(
            f"{path}: cannot read as a PNG image ({type(err).__name__}); re-export the slice or remove it"
        ) from None
    if mode not in EIGHT_BIT_MODES:
        raise DataFileError(
            f"{path}: {'16-bit' if '16' in mode else 'not 8-bit'} PNG (mode {mode}); survlab reads 8-bit windowed "
            f"slices (0-255): export the stack windowed to 8 bits, or give the CT volume (imaging.source=nifti) so "
            f"survlab windows the HU values itself"
        )


def check_slice_numbers(paths: Sequence[Path], folder: Path | str) -> None:
    """The slices of a stack numbered <prefix><k><suffix> (e.g. slice_1.png ... slice_12.png) must be consecutive and
    each number given once: a gap is a missing slice (the stack would run as if complete). Names without one common
    numbered pattern are not judged (their natural-sort order is used as it is)."""
    parts = [re.fullmatch(r"(.*?)(\d+)(\D*)", p.stem) for p in paths]
    if len(paths) < 2 or not all(parts) or len({(m.group(1), m.group(3)) for m in parts}) != 1:  # type: ignore[union-attr]
        return
    numbers = sorted(int(m.group(2)) for m in parts)  # type: ignore[union-attr]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        raise DataFileError(
            f"{folder}: slice number(s) {twice[:5]} occur in several file names (e.g. zero-padded and not); keep "
            f"one file per slice"
        )
    gaps = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if gaps:
        raise DataFileError(
            f"{folder}: slice number(s) {gaps[:5]}{' ...' if len(gaps) > 5 else ''} missing between "
            f"{paths[0].name if len(paths) else ''} ({numbers[0]}) and {numbers[-1]} ({len(gaps)} of "
            f"{numbers[-1] - numbers[0] + 1}); re-export the whole stack (a gap would shift every slice after it)"
        )


def read_png_stack(paths: Sequence[Path]) -> np.ndarray:
    """Grayscale 8-bit PNG slices -> uint8 [N, H, W] (MONAI LoadImage + PILReader; RGB is converted to luminance).
    Unreadable files, 16-bit files and slices of different sizes are a DataFileError naming the file."""
    from monai.data import PILReader
    from monai.transforms import LoadImage

    for path in paths:
        check_bit_depth(path)

    loader = LoadImage(
        reader=PILReader(reverse_indexing=False, converter=lambda im: im.convert("L")),
        image_only=True,
        dtype=np.float32,
    )
    slices = []
    for path in paths:
        try:
            img = np.asarray(loader(str(path)))
        except Exception as err:  # noqa: BLE001 - any decoder error becomes one line naming the file
            raise DataFileError(
                f"{path}: cannot read as a PNG image ({type(err).__name__}); re-export the slice or remove it"
            ) from None
        if slices and img.shape != slices[0].shape:
            raise DataFileError(
                f"{path}: slice is {img.shape[0]}x{img.shape[1]} but {paths[0].name} of the same "
                f"stack is {slices[0].shape[0]}x{slices[0].shape[1]}; export every slice of a "
                f"stack at one size"
            )
        slices.append(img)
    return np.clip(np.rint(np.stack(slices)), 0, 255).astype(np.uint8)


def resize_stack(stack: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W] -> float32 [N, size, size] in [0, 1] (MONAI Resize, area interpolation; no-op at size)."""
    x = stack.astype(np.float32) / 255.0
    if x.shape[-2:] == (size, size):
        return x
    from monai.transforms import Resize

    return np.asarray(Resize((size, size), mode="area")(x), dtype=np.float32)


def fix_length(stack: np.ndarray, length: int, select: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """float [N, H, W] -> ([length, H, W], mask [length] bool): evenly spaced (uniform) or first (first) slices
    when N > length; zero padding after the real slices when N < length."""
    n = stack.shape[0]
    if n > length:
        idx = np.arange(length) if select == "first" else np.rint(np.linspace(0, n - 1, length)).astype(int)
        return stack[idx], np.ones(length, dtype=bool)
    out = np.zeros((length, *stack.shape[1:]), dtype=stack.dtype)
    out[:n] = stack
    mask = np.zeros(length, dtype=bool)
    mask[:n] = True
    return out, mask
