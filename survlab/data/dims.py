"""What the data tells a network about a cohort (`ModalityDims`) and the modality names (`MODALITIES`).

It lives with the data (the data module derives it from the cohort); `survlab.models.base` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: modality names a cohort can provide and a network can require
MODALITIES = (
    "wsi",
    "scales",
    "genomics",
    "clinical",
    "text",
    "ct",
    "ct_seg",
)  # ct_seg: slices + lung/lesion masks


@dataclass(frozen=True)
class ModalityDims:
    """Sizes the data module derives from the cohort and hands to the network constructor.

    wsi_dim: patch feature dim D; scale_dims: scale name -> D_s for multi-scale bags (ordered, e.g. x5, x10, x20);
    genomic_sizes / genomic_names: genes per group (after matching) and group names; clinical_dim: number of
    clinical features after encoding; n_bins: discrete-time bins; n_classes: label name -> number of classes;
    slide_n_classes: slide label name -> number of classes; endpoints: survival endpoint names (primary first);
    prompts: label name -> {class: sentences} (text prompts, in the label's class order).
    """

    wsi_dim: int | None = None
    scale_dims: dict[str, int] | None = None
    genomic_sizes: tuple[int, ...] | None = None
    genomic_names: tuple[str, ...] | None = None
    clinical_dim: int | None = None
    clinical_names: tuple[str, ...] | None = None
    n_bins: int = 4
    primary_label: str | None = None  # the label a single-label network predicts when not told which
    n_classes: dict[str, int] = field(default_factory=dict)
    slide_n_classes: dict[str, int] = field(default_factory=dict)  # slide label name -> number of classes
    endpoints: tuple[str, ...] = ()  # survival endpoints, the primary first (empty: no survival)
    # text: label name -> {class name: sentences} in the label's class order (data.prompts; survlab.data.modalities.text)
    prompts: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    imaging: dict[str, int] | None = (
        None  # CT/PET: stack_length, image_size, radiomics, pet dims (None: no CT)
    )

    @property
    def provides(self) -> set[str]:
        """Modalities present in the cohort."""
        have = set()
        if self.wsi_dim is not None:
            have.add("wsi")
        if self.scale_dims:
            have.add("scales")
        if self.genomic_sizes:
            have.add("genomics")
        if self.clinical_dim:
            have.add("clinical")
        if self.prompts:
            have.add("text")
        if self.imaging:
            have.add("ct")
        return have
