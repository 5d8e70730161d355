"""Numerics under mixed precision (Lightning `bf16-mixed` / `16-mixed`, i.e. torch.autocast).

Autocast runs matmuls in bf16/fp16 and leaves the parameters in fp32. Two kinds of layer need help:

- `nn.Bilinear` is on no autocast list: under autocast it receives bf16/fp16 activations with fp32 weights and
  raises "All tensors must have the same dtype". `FullPrecisionBilinear` runs it in the weight dtype instead.
- the output layer: bf16 keeps 8 significant bits, so bf16 hazard logits / Cox risks tie across patients and
  change the C-index. `FullPrecisionLinear` (every survival head) returns them in the weight dtype (fp32).

Both are drop-in subclasses (same parameters, same state_dict keys). `full_precision` is the context the two run
in; `at_least_fp32` lifts bf16/fp16 tensors to fp32 (and leaves fp32/fp64 as they are) before losses and metrics.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn


def at_least_fp32(x: Tensor) -> Tensor:
    """bf16/fp16 → fp32; fp32 and fp64 unchanged (so float64 references stay exact)."""
    return x.to(torch.promote_types(x.dtype, torch.float32)) if x.is_floating_point() else x


def full_precision(device: torch.device) -> AbstractContextManager:
    """Context with autocast switched off on `device`'s type: ops inside run in their inputs' dtype."""
    return torch.autocast(device_type=device.type, enabled=False)


class FullPrecisionLinear(nn.Linear):
    """`nn.Linear` that runs in its weight dtype (fp32 under autocast): inputs [..., in] → [..., out]."""

    def forward(self, x: Tensor) -> Tensor:
        with full_precision(x.device):
            return super().forward(x.to(self.weight.dtype))


class FullPrecisionBilinear(nn.Bilinear):
    """`nn.Bilinear` that runs in its weight dtype (fp32 under autocast): x1 [B, in1], x2 [B, in2] → [B, out]."""

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        with full_precision(x1.device):
            return super().forward(x1.to(self.weight.dtype), x2.to(self.weight.dtype))


__all__ = ["FullPrecisionBilinear", "FullPrecisionLinear", "at_least_fp32", "full_precision"]
