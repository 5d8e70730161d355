"""Pretrained weights a network starts from, read here (networks do no file I/O): HMF's attention filter from a
user's CLAM checkpoint (`model.filter_checkpoint`).

Accepted checkpoints (loaded with `torch.load(weights_only=True)`; nothing is unpickled):
- mahmoodlab/CLAM `CLAM_SB` / `CLAM_MB`-style state dicts (`attention_net.0.*`, `attention_net.3.attention_{a,b,c}.*`,
  as `torch.save(model.state_dict())` writes them, e.g. s_0_checkpoint.pt);
- survlab checkpoints of `model=clam_sb` (Lightning .ckpt: `state_dict` with `net.patch_fc.*`, `net.pool.*`) or of
  `model=hmf` (`net.filter.*`).
A file with none of these, or with other shapes than the network's filter (feature dim, hidden sizes), is a one-line
ValueError naming the file, the key and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from survlab.data.cohort.checks import DataFileError

#: mahmoodlab/CLAM parameter name -> survlab AttentionFilter / CLAMSB name
CLAM_NAMES = {
    "attention_net.0.weight": "patch_fc.0.weight",
    "attention_net.0.bias": "patch_fc.0.bias",
    "attention_net.3.attention_a.0.weight": "pool.value.0.weight",
    "attention_net.3.attention_a.0.bias": "pool.value.0.bias",
    "attention_net.3.attention_b.0.weight": "pool.gate.0.weight",
    "attention_net.3.attention_b.0.bias": "pool.gate.0.bias",
    "attention_net.3.attention_c.weight": "pool.score.weight",
    "attention_net.3.attention_c.bias": "pool.score.bias",
}
SURVLAB_PREFIXES = ("net.filter.", "filter.", "net.", "")


def filter_state_from_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The attention-filter weights of a CLAM / survlab checkpoint, under survlab's names (`patch_fc.*`, `pool.*`)."""
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise DataFileError(
            f"model.filter_checkpoint {path} does not exist; give the path of a CLAM checkpoint "
            f"(e.g. results/<exp>/s_0_checkpoint.pt) or set model.net.filter=trainable"
        )
    try:
        obj: Any = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise DataFileError(
            f"model.filter_checkpoint {path} is not a readable torch checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        ) from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise DataFileError(f"model.filter_checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel / DDP-saved CLAM weights
    if all(k in state for k in CLAM_NAMES):
        return {ours: state[theirs] for theirs, ours in CLAM_NAMES.items()}
    for prefix in SURVLAB_PREFIXES:
        found = {
            k.removeprefix(prefix): v
            for k, v in state.items()
            if k.startswith(prefix) and k.removeprefix(prefix).split(".")[0] in ("patch_fc", "pool")
        }
        if "patch_fc.0.weight" in found and "pool.score.weight" in found:
            return found
    raise DataFileError(
        f"model.filter_checkpoint {path} has no CLAM attention branch (expected attention_net.0.* "
        f"and attention_net.3.attention_{{a,b,c}}.* as mahmoodlab/CLAM saves them, or a survlab "
        f"clam_sb checkpoint with net.patch_fc.* / net.pool.*); first keys: {list(state)[:4]}"
    )


def load_filter_checkpoint(net: nn.Module, path: str | os.PathLike) -> None:
    """Copy a CLAM checkpoint's attention branch into `net.filter` (shapes checked first)."""
    target = getattr(net, "filter", None)
    if target is None:
        raise ValueError(
            f"model.filter_checkpoint is set but {type(net).__name__} has no attention filter "
            f"(model.net.filter=none?); drop model.filter_checkpoint or set model.net.filter=frozen"
        )
    state = filter_state_from_checkpoint(path)
    expected = target.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise DataFileError(
                f"model.filter_checkpoint {path} lacks {key}; it is not a CLAM-SB attention branch"
            )
        if tuple(state[key].shape) != tuple(value.shape):
            raise DataFileError(
                f"model.filter_checkpoint {path}: {key} has shape {tuple(state[key].shape)} but the filter needs "
                f"{tuple(value.shape)}; match data.wsi.feature_dim / model.net.filter_hidden / model.net.filter_attn "
                f"to the checkpoint (CLAM small: 1024 -> 512 -> 256)"
            )
    target.load_state_dict({k: state[k].to(value.dtype) for k, value in expected.items()})


def apply_pretrained(model_cfg: DictConfig, net: nn.Module) -> None:
    """Start `net` from the pretrained weights `model_cfg` names (before training; resumed runs then load theirs)."""
    path = model_cfg.get("filter_checkpoint")
    if path:
        load_filter_checkpoint(net, path)
    elif getattr(net, "filter_mode", None) == "frozen":
        raise ValueError(
            "model.net.filter=frozen needs model.filter_checkpoint=<CLAM checkpoint>; a frozen random "
            "filter would pick random patches (or set model.net.filter=trainable)"
        )


__all__ = ["CLAM_NAMES", "apply_pretrained", "filter_state_from_checkpoint", "load_filter_checkpoint"]
