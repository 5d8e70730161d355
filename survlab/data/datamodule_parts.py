"""What `CohortDataModule.setup()` builds from the fold once the modalities are read: one part's dataset, the
preprocessing plan (`PreprocessingPlan`), the network's input sizes (`ModalityDims`) and the class prompts of
text-prompted labels; a mixin of `CohortDataModule`.
"""

from __future__ import annotations

from typing import Any

from survlab.data.dataset import PatientDataset
from survlab.data.dims import ModalityDims
from survlab.data.fitted_plan import PreprocessingPlan
from survlab.data.modalities.text import prompts_for_classes, resolve_prompts_file


class FoldParts:
    """The fold's datasets, preprocessing plan, input sizes and class prompts (module doc)."""

    # set by CohortDataModule (its __init__, setup() and bases CohortSpec / PartLoaders / Absence)
    clin_categorical: Any
    clin_cols: Any
    cohort: Any
    endpoints: Any
    eval_max_patches: Any
    fitted: Any
    fold: Any
    full_cohort: Any
    gen_cfg: Any
    imaging: Any
    label_cols: Any
    label_specs: Any
    max_patches: Any
    max_patches_per_scale: Any
    modalities: Any
    n_bins: Any
    name: Any
    primary_label: Any
    prompt_files: Any
    raw_prompts: Any
    seed: Any
    slide_label_specs: Any
    sources: Any
    split: Any

    def _dataset(self, part: str, train: bool | None = None) -> PatientDataset:
        return PatientDataset(
            self.cohort.rows(self.split.part(part)),
            self.full_cohort.index_of(),
            self.fitted.endpoint_bins,
            self.sources,
            self.label_cols,
            train=part == "train" if train is None else train,
            max_patches=self.max_patches,
            max_patches_per_scale=self.max_patches_per_scale,
            eval_max_patches=self.eval_max_patches,
            seed=self.seed,
        )

    def _plan(self) -> PreprocessingPlan:
        """What this fold fits on its training patients (survlab.data.fitted.FoldPreprocessing.fit)."""
        g = self.gen_cfg
        return PreprocessingPlan(
            cohort=self.name,
            fold=int(self.fold),
            modalities=tuple(self.modalities),
            endpoints=tuple(e.name for e in self.endpoints),
            label_specs=dict(self.label_specs),
            slide_label_specs=dict(self.slide_label_specs),
            primary_label=self.primary_label,
            n_bins=int(self.n_bins),
            clinical_columns=tuple(self.clin_cols),
            clinical_categorical=tuple(self.clin_categorical),
            genomics={k: g[k] for k in ("select", "scaling", "log1p")} if g is not None else None,
        )

    def _dims(self) -> ModalityDims:
        src = self.sources
        wsi_dim = scale_dims = None
        slide_lists = [
            ss for ss in self.cohort.table["slide_ids"] if len(ss)
        ]  # keep: some patients have none
        if src.wsi is not None:
            wsi_dim = src.wsi.feature_dim or int(src.wsi.read_slide(slide_lists[0][0])[0].shape[1])
        if src.scales is not None:
            first = slide_lists[0][0]
            scale_dims = {
                s: st.feature_dim or int(st.read_slide(first)[0].shape[1]) for s, st in src.scales.items()
            }
        gen = self.fitted.gene_groups if src.genomics is not None else None
        enc = self.fitted.clinical_encoder if src.clinical is not None else None
        return ModalityDims(
            wsi_dim=wsi_dim,
            scale_dims=scale_dims,
            genomic_sizes=gen.sizes if gen else None,
            genomic_names=gen.names if gen else None,
            clinical_dim=enc.dim if enc else None,
            clinical_names=tuple(enc.feature_names) if enc else None,
            n_bins=self.n_bins,
            n_classes={c: len(k) for c, k in src.classes.items()},
            slide_n_classes={c: len(k) for c, k in src.slide_classes.items()},
            endpoints=tuple(e.name for e in self.endpoints),
            primary_label=self.primary_label,
            prompts=self._class_prompts() if "text" in self.modalities else {},
            imaging=self.imaging.dims if src.imaging is not None else None,
        )

    def _class_prompts(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Prompts of every `prompts` label (patient or slide label) in its class order; a missing class, or a
        prompts label the cohort does not declare, is a one-line error."""
        src, out = self.sources, {}
        for name, raw in self.raw_prompts.items():
            classes = src.slide_classes.get(name, src.classes.get(name))
            if classes is None:
                raise ValueError(
                    f"data={self.name}: prompts for {name!r}, which is neither a label "
                    f"{list(src.classes)} nor a slide label {list(src.slide_classes)}; key data.prompts "
                    f"by one of them"
                )
            out[name] = prompts_for_classes(raw, classes, name, resolve_prompts_file(self.prompt_files[name]))
        return out
