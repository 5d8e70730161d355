"""MM-DLS lung / lesion segmentor (LungLesionSegmentor, docs/specs/mmdls.md).

    image [B, 1, H, W] -> ResNet-18 stem + layer1 + layer2 (MONAI `resnet18`, ImageNet-style 7x7 stride-2 stem)
                       -> features [B, 128, H/8, W/8]
    lung   = decoder(features)                                   -> logits [B, 1, H, W]
    lesion = decoder(features + self-attention over the H/8 x W/8 spatial tokens (4 heads, dropout 0.1))
    decoder: conv3x3 128->64, ReLU, conv3x3 64->32, ReLU, conv1x1 32->1, bilinear upsample to H x W

The decoders return LOGITS (the reference applies the sigmoid before upsampling; survlab upsamples the logits and
the Dice loss / metric apply the sigmoid, which is numerically safer and gives the same masks at 0.5). Pretrained
backbone weights are optional and loaded from a user-given path (`pretrained`, a state dict of MONAI's resnet18 or
of the backbone), never downloaded.

Example:
    >>> net = LungLesionSegmentor(ModalityDims(imaging={"image_size": 64}))
    >>> out = net(torch.zeros(2, 1, 64, 64)); out["lung"].shape, out["lesion"].shape   # [2, 1, 64, 64] each
    (torch.Size([2, 1, 64, 64]), torch.Size([2, 1, 64, 64]))
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from survlab.models.base import ModalityDims, Segmentor
from survlab.models.blocks import ResidualSelfAttention


def resnet18_stem_to_layer2(in_channels: int = 1) -> nn.Sequential:
    """MONAI resnet18 (2-D, ImageNet-style 7x7 / stride-2 stem) truncated after layer2: [B, C, H, W] ->
    [B, 128, H/8, W/8]."""
    from monai.networks.nets import resnet18

    full = resnet18(
        spatial_dims=2, n_input_channels=in_channels, conv1_t_size=7, conv1_t_stride=2, num_classes=1
    )
    return nn.Sequential(full.conv1, full.bn1, full.act, full.maxpool, full.layer1, full.layer2)


def mask_decoder(in_channels: int = 128) -> nn.Sequential:
    """conv3x3 in->64, ReLU, conv3x3 64->32, ReLU, conv1x1 32->1: [B, in, h, w] -> logits [B, 1, h, w]."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 1, 1),
    )


class LungLesionSegmentor(Segmentor):
    """Shared ResNet-18 encoder, spatial self-attention, two decoders (see module docstring).

    Args:
        dims: cohort sizes (unused beyond the contract; slices are [B, 1, H, W] with H, W divisible by 8).
        heads, dropout: spatial self-attention (spec: 4, 0.1).
        pretrained: optional path of a backbone state dict (weights_only load); None = random init.
    """

    modalities: ClassVar[tuple[str, ...]] = ("ct_seg",)
    MASKS: ClassVar[tuple[str, ...]] = ("lung", "lesion")

    def __init__(
        self,
        dims: ModalityDims | None = None,
        heads: int = 4,
        dropout: float = 0.1,
        pretrained: str | None = None,
    ) -> None:
        super().__init__(dims)
        self.encoder = resnet18_stem_to_layer2(1)
        if pretrained:
            self.load_backbone(pretrained)
        self.attention = ResidualSelfAttention(128, heads, dropout)
        self.lung_decoder, self.lesion_decoder = mask_decoder(128), mask_decoder(128)

    def load_backbone(self, path: str) -> None:
        """Load backbone weights (MONAI resnet18 keys conv1/bn1/layer1/layer2..., or this Sequential's 0..5)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        names = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5"}
        mapped = {}
        for key, value in state.items():
            head, _, rest = key.partition(".")
            if head in names:
                mapped[f"{names[head]}.{rest}"] = value
            elif head in names.values():
                mapped[key] = value
        missing, _ = self.encoder.load_state_dict(mapped, strict=False)
        if missing:
            raise ValueError(
                f"pretrained={path}: {len(missing)} backbone weights missing (e.g. {missing[0]}); give a "
                f"state dict of MONAI's 2-D resnet18 with one input channel"
            )

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """image [B, 1, H, W] -> {"lung": logits [B, 1, H, W], "lesion": logits [B, 1, H, W]}."""
        feats = self.encoder(image)  # [B, 128, h, w]
        b, c, h, w = feats.shape
        tokens = self.attention(feats.flatten(2).transpose(1, 2))  # [B, h*w, 128]
        attended = tokens.transpose(1, 2).reshape(b, c, h, w)
        size = image.shape[-2:]
        return {
            "lung": nn.functional.interpolate(
                self.lung_decoder(feats), size=size, mode="bilinear", align_corners=False
            ),
            "lesion": nn.functional.interpolate(
                self.lesion_decoder(attended), size=size, mode="bilinear", align_corners=False
            ),
        }


__all__ = ["LungLesionSegmentor", "mask_decoder", "resnet18_stem_to_layer2"]
