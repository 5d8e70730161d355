"""Patch-level ("distributed") inference: each patch of a patient's bag alone, with the patient's full genomics,
through a WSI + genomics network → per-patch grade probabilities and risk, with slide id and coordinates (PathGen's
grade / risk heat maps).

Example:
    >>> frame = patch_predictions(net, batch, slide_ids={"P1": ["P1-DX1"]}, classes=["G1", "G2"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from survlab.data.batch import Batch
from survlab.models.base import risk_score


@torch.no_grad()
def patch_predictions(
    net: nn.Module,
    batch: Batch,
    slide_ids: dict[str, Sequence[str]],
    label: str,
    classes: Sequence[str],
    chunk: int = 256,
) -> pd.DataFrame:
    """Rows = every real patch of every patient of `batch`: case_id, slide_id, x, y, patch (row in the patient's
    bag), risk, <label>_pred, <label>_prob_<class>. Each patch is a one-patch bag; genomics are the patient's."""
    was_training = net.training
    net.eval()
    frames = []
    for b, case in enumerate(batch.case_ids):
        keep = (
            batch.wsi_mask[b]
            if batch.wsi_mask is not None
            else torch.ones(batch.wsi.shape[1], dtype=torch.bool)
        )
        feats = batch.wsi[b][keep]
        n = feats.shape[0]
        risk, probs = [], []
        for start in range(0, n, chunk):
            x = feats[start : start + chunk].unsqueeze(1)  # [n_c, 1, D]: each patch alone
            m = x.shape[0]
            one = Batch(
                case_ids=[case] * m,
                index=batch.index[b].repeat(m),
                time=batch.time[b].repeat(m),
                event=batch.event[b].repeat(m),
                time_bin=batch.time_bin[b].repeat(m),
                wsi=x,
                wsi_mask=torch.ones(m, 1, dtype=torch.bool, device=x.device),
                genomics=[g[b : b + 1].expand(m, -1) for g in batch.genomics] if batch.genomics else None,
            )
            pred = net(one)
            risk.append(risk_score(pred).float().cpu())
            probs.append(torch.softmax(pred.class_logits[label].float(), dim=-1).cpu())
        p = torch.cat(probs).numpy()
        slide_index = (
            batch.slide_index[b][keep].cpu().numpy() if batch.slide_index is not None else np.zeros(n, int)
        )
        coords = batch.coords[b][keep].cpu().numpy() if batch.coords is not None else np.full((n, 2), -1)
        patch = batch.patch_index[b][keep].cpu().numpy() if batch.patch_index is not None else np.arange(n)
        frame = pd.DataFrame(
            {
                "case_id": case,
                "slide_id": [slide_ids[case][i] for i in slide_index],
                "x": coords[:, 0],
                "y": coords[:, 1],
                "patch": patch,
                "risk": torch.cat(risk).numpy(),
                f"{label}_pred": [classes[i] for i in p.argmax(1)],
            }
        )
        for j, c in enumerate(classes):
            frame[f"{label}_prob_{c}"] = p[:, j]
        frames.append(frame)
    net.train(was_training)
    return pd.concat(frames, ignore_index=True)


__all__ = ["patch_predictions"]
