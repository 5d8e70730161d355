"""HMF: hierarchical multimodal fusion of WSI patch features and class-prompt text, slide -> patient
(Yao et al. 2025, "Hierarchical Multimodal Fusion of Whole Slide Images and Text for Patient-Level Cancer Staging").

Per slide (every slide of every patient on its own; a slide's outputs depend only on its own patches):
    1. attention filter: CLAM-SB's attention branch (Linear D->512, ReLU, Dropout; gated attention 512->256->1)
       scores the patches; the top k = floor(n_slide * ratio) of the slide are kept (at least 1)
    2. LayerNorm(D) on the kept patches
    3. text set: embeddings of ALL classes' prompts (never chosen by the label)                      [T, text_dim]
    4. Bi-Cross Attention (Linear D->d, Linear text_dim->d): text->image MHA (Q = text, K = V = kept patches,
       padding masked) + residual + LN -> text'; image->text MHA (Q = patches, K = V = text') + residual + LN -> patch'
    5. shared Linear(d, d) on patch' and text', row-wise L2 normalisation
    6. contrastive loss (training only; the label is used here and nowhere else): image vector = masked mean of the
       patch tokens -> Linear -> L2 norm, each sentence -> Linear -> L2 norm, similarities / temperature;
       loss = mean of KL(uniform over the true class's sentences || softmax(similarities)) and per-sentence BCE
    7. slide classifier: token FFN d->256->128->d + residual + LN, TransformerEncoder ACROSS the kept patches
       (padding masked), masked mean, Linear d->E, GELU, LN -> slide embedding [E] -> slide heads
Per patient:
    8. attention pooling of the slide embeddings (MLP E->512 tanh->256 tanh->1, softmax over the
       patient's real slides); a TransformerEncoder over the slide tokens (slide mask) + residual; pooled with the
       attention weights; bottleneck residual E->256->E; head LN, Linear E->256, ReLU, Dropout -> patient heads.

Choices where the spec is open (and the reference's defects, not copied):
- Batching: patients are padded bags with `slide_index`; the kept patches of every real slide of the batch form one
  [M, k_max] batch of slides with a key mask, so a slide never attends to another slide's patches or to padding.
- k = max(1, floor(n * ratio)) per slide (a 1-patch slide keeps its patch), in exact integer arithmetic on the decimal
  ratio (`kept_per_slide`); ties keep the bag order.
- `filter: trainable` trains the scorer with CLAM's bag loss: the slide's attention-pooled patch embedding ->
  linear head -> CE on the slide target, returned as `aux_losses["filter"]` (top-k selection itself has no
  gradient). `frozen`: weights from a user's CLAM checkpoint (loaded by `survlab.tasks.pretrained`; the network
  reads no file), no gradient, eval mode. `none`: keep every patch, whatever the ratio (the "no attention filter"
  ablation).
- `use_text: false` (the "no text" ablation): step 4 is skipped (patch' = projected patches), no contrastive loss.
- Step 6's two Linears are separate from step 5's shared one (the spec names both); the slide classifier reads the
  step-5 tokens. The reference's per-token "multi-head attention" is replaced by a real attention across patches
  (the TransformerEncoder); the patient transformer runs over the slide tokens, not copies of one pooled vector.
- The contrastive / filter target of a slide is the `text_label` (the label the prompts describe): a slide label
  where the cohort has one, else the patient's label for each of its slides (TCGA: one subtype per patient).
- A frozen text encoder's prompt embeddings are computed once at construction and kept as a buffer
  (`prompt_embeddings`); a trainable one runs every forward pass (it is then a submodule and is fine-tuned).

Spec deviations kept as defaults (the published runs, experiments/hmf_benchmark, used them; each has an option):
- the token FFN of step 7 has no LayerNorm inside (the spec: ReLU, LayerNorm, Dropout 0.3 per hidden layer);
  `ffn_norm: true` adds it.
- the slide TransformerEncoder of step 7 uses the FFN's dropout 0.3 (the reference keeps PyTorch's 0.1);
  `slide_dropout: 0.1` gives the reference's.

Prediction: class_logits[label] [B, K] (patient heads), slide_logits[slide label] [B, S, K_s] (zeros on absent
slide slots), aux_losses {"contrastive", "filter"} in training, attention {"slide" [B, S] slide weights per patient,
"slide_patch" [B, S, N] filter attention within each slide, "patch" [B, N] = slide weight x patch weight, "kept"
[B, N] (1.0 = passed the filter)}, embedding [B, E] (patient).

Example:
    >>> dims = ModalityDims(wsi_dim=32, n_classes={"label": 2}, slide_n_classes={"slide_label": 2},
    ...                     prompts={"slide_label": {"normal": ("a",), "tumor": ("b",)}})
    >>> net = HMF(dims, text_encoder=build_text_encoder(), dim=32, slide_dim=64)  # doctest: +SKIP
    >>> pred = net(batch)  # class_logits["label"] [B, 2], slide_logits["slide_label"] [B, S, 2]  # doctest: +SKIP

(not run as a doctest: the text encoder loads the optional `text` extra's MiniLM weights; tests/models/test_hmf.py
runs HMF.)
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import ModalityDims, OutcomeNet, Prediction
from survlab.models.blocks import (
    CrossAttention,
    GatedAttentionPool,
    masked_mean,
    masked_softmax,
    mlp,
)
from survlab.models.heads import ClassHeads
from survlab.models.text_encoder import TextEncoder

FILTER_MODES = ("trainable", "frozen", "none")


class AttentionFilter(nn.Module):
    """CLAM-SB's attention branch as a patch scorer: x [..., N, D] -> (h [..., N, hidden], scores [..., N]).

    Submodule names equal CLAMSB's (`patch_fc`, `pool`), so a CLAM-SB checkpoint's weights load as they are.
    """

    def __init__(self, in_dim: int, hidden: int = 512, attn_dim: int = 256, dropout: float = 0.25) -> None:
        super().__init__()
        self.patch_fc = mlp([in_dim, hidden], dropout=dropout)
        self.pool = GatedAttentionPool(hidden, hidden=attn_dim, dropout=dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.patch_fc(x)
        return h, self.pool.scores(h)


def _token_ffn(dims: Sequence[int], dropout: float, norm: bool) -> nn.Sequential:
    """Step 7's per-token FFN through `dims` (d -> 256 -> 128 -> d): Linear -> ReLU [-> LayerNorm] -> Dropout on the
    hidden layers, the last Linear bare; `norm` adds the spec's LayerNorm (off by default: published runs)."""
    if not norm:
        return mlp(dims, dropout=dropout, last_act=False)
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-2], dims[1:-1], strict=True):
        layers += [nn.Linear(d_in, d_out), nn.ReLU(), nn.LayerNorm(d_out), nn.Dropout(dropout)]
    return nn.Sequential(*layers, nn.Linear(dims[-2], dims[-1]))


def _encoder(dim: int, heads: int, ff: int, layers: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class BiCrossAttention(nn.Module):
    """Text->image then image->text attention: patches [M, K, d] (mask [M, K]), text [M, T, d]
    -> (patch' [M, K, d], text' [M, T, d], text->image attention [M, T, K])."""

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.25) -> None:
        super().__init__()
        self.text_to_image = CrossAttention(dim, heads, dropout)
        self.image_to_text = CrossAttention(dim, heads, dropout)
        self.norm_text, self.norm_image = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, patches: Tensor, mask: Tensor, text: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        attended, attn = self.text_to_image(text, patches, mask)
        text = self.norm_text(text + attended)
        attended, _ = self.image_to_text(patches, text, None, need_weights=False)
        return self.norm_image(patches + attended), text, attn


class HMF(OutcomeNet):
    """HMF network (see the module docstring). Sizes default to the paper's (d 512, slide embedding 1024).

    Args:
        dims: cohort sizes (wsi_dim; n_classes / slide_n_classes; prompts[text_label] when use_text).
        text_encoder: a `TextEncoder` (model.net.text_encoder: `survlab.models.text_encoder.build_text_encoder`).
        text_label: the label the prompts describe (None = the only label in dims.prompts).
        targets: patient labels to classify (None = the primary label); slide_targets: slide labels (None = all).
        filter: trainable | frozen | none; ratio: fraction of each slide's patches kept; filter_hidden / filter_attn
        / filter_dropout: the CLAM scorer ([D, 512, 256], 0.25).
        use_text: Bi-Cross Attention + contrastive loss (false: the "no text" ablation); temperature: 0.07.
        dim / heads / cross_dropout: Bi-Cross Attention (512, 8, 0.25); ffn_hidden / ffn_dropout / ffn_norm: token
        FFN ([256, 128], 0.3, false: no LayerNorm inside, see the spec notes); slide_heads / slide_ff / slide_layers /
        slide_dropout: slide transformer (4, 1024, 2, null = ffn_dropout 0.3; the reference's is 0.1); slide_dim: E
        (1024).
        pool_hidden / pool_dropout: slide attention pooling ([512, 256], 0.25); patient_heads / patient_ff /
        patient_layers / patient_dropout: patient transformer (8, 1024, 2, 0.3); bottleneck (256); head_hidden (256).
    """

    modalities = ("wsi", "text")

    def __init__(
        self,
        dims: ModalityDims,
        text_encoder: TextEncoder | None = None,
        text_label: str | None = None,
        targets: Sequence[str] | None = None,
        slide_targets: Sequence[str] | None = None,
        filter: str = "trainable",
        ratio: float = 0.5,
        filter_hidden: int = 512,
        filter_attn: int = 256,
        filter_dropout: float = 0.25,
        use_text: bool = True,
        temperature: float = 0.07,
        dim: int = 512,
        heads: int = 8,
        cross_dropout: float = 0.25,
        ffn_hidden: Sequence[int] = (256, 128),
        ffn_dropout: float = 0.3,
        ffn_norm: bool = False,
        slide_dropout: float | None = None,
        slide_heads: int = 4,
        slide_ff: int = 1024,
        slide_layers: int = 2,
        slide_dim: int = 1024,
        pool_hidden: Sequence[int] = (512, 256),
        pool_dropout: float = 0.25,
        patient_heads: int = 8,
        patient_ff: int = 1024,
        patient_layers: int = 2,
        patient_dropout: float = 0.3,
        bottleneck: int = 256,
        head_hidden: int = 256,
    ) -> None:
        super().__init__(dims)
        if filter not in FILTER_MODES:
            raise ValueError(f"HMF filter must be one of {FILTER_MODES}, got {filter!r}")
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"HMF ratio must be in (0, 1], got {ratio}")
        if temperature <= 0:
            raise ValueError(f"HMF temperature must be > 0, got {temperature}")
        names = list(dims.prompts)
        if text_label is None:
            if len(names) != 1:
                raise ValueError(
                    f"HMF text_label: null needs exactly one prompts label, the cohort has {names}; "
                    f"set model.net.text_label to one of them"
                )
            text_label = names[0]
        if text_label not in dims.prompts:
            raise ValueError(
                f"HMF text_label {text_label!r} has no prompts (data.prompts has {names or 'none'}); "
                f"add data.prompts.{text_label}=<file.json>"
            )
        self.text_label, self.filter_mode, self.ratio = text_label, filter, float(ratio)
        self.use_text, self.temperature = bool(use_text), float(temperature)
        prompts = dims.prompts[text_label]
        self.n_text_classes = len(prompts)
        self.sentences = [s for sentences in prompts.values() for s in sentences]
        self.register_buffer(
            "prompt_classes",
            torch.tensor(
                [c for c, sentences in enumerate(prompts.values()) for _ in sentences], dtype=torch.long
            ),
            persistent=False,
        )

        d_in = dims.wsi_dim
        self.filter = (
            AttentionFilter(d_in, filter_hidden, filter_attn, filter_dropout) if filter != "none" else None
        )
        if self.filter is not None and filter == "frozen":
            self.filter.requires_grad_(False)
        self.filter_head = nn.Linear(filter_hidden, self.n_text_classes) if filter == "trainable" else None
        self.patch_norm = nn.LayerNorm(d_in)
        self.image_proj = nn.Linear(d_in, dim)

        self.text_encoder: TextEncoder | None = None
        if self.use_text:
            if text_encoder is None:
                raise ValueError(
                    "HMF use_text=true needs model.net.text_encoder (e.g. _target_: "
                    "survlab.models.text_encoder.build_text_encoder)"
                )
            if text_encoder.trainable:
                self.text_encoder = text_encoder  # fine-tuned: a submodule, run every forward pass
            else:
                with torch.no_grad():
                    cached = text_encoder.encode(self.sentences).detach().float().cpu()
                self.register_buffer("prompt_embeddings", cached)  # computed once per run
            self.text_proj = nn.Linear(text_encoder.dim, dim)
            self.bicross = BiCrossAttention(dim, heads, cross_dropout)
            self.contrast_image = nn.Linear(dim, dim)
            self.contrast_text = nn.Linear(dim, dim)
        self.shared_proj = nn.Linear(dim, dim)

        self.token_ffn = _token_ffn([dim, *ffn_hidden, dim], ffn_dropout, bool(ffn_norm))
        self.token_norm = nn.LayerNorm(dim)
        self.slide_transformer = _encoder(
            dim,
            slide_heads,
            slide_ff,
            slide_layers,
            ffn_dropout if slide_dropout is None else float(slide_dropout),
        )
        self.slide_embed = nn.Sequential(nn.Linear(dim, slide_dim), nn.GELU(), nn.LayerNorm(slide_dim))
        slide_targets = list(dims.slide_n_classes) if slide_targets is None else list(slide_targets)
        unknown = [t for t in slide_targets if t not in dims.slide_n_classes]
        if unknown:
            raise ValueError(
                f"HMF slide_targets {unknown} are not slide labels of the cohort (it has "
                f"{list(dims.slide_n_classes) or 'none'}); declare them under data.slide_labels"
            )
        self.slide_heads = ClassHeads(slide_dim, {t: dims.slide_n_classes[t] for t in slide_targets})

        # no bias on the last score layer: a softmax over slides ignores it (it would never get a gradient)
        self.slide_score = nn.Sequential(
            mlp([slide_dim, *pool_hidden], dropout=pool_dropout, act=nn.Tanh),
            nn.Linear(pool_hidden[-1], 1, bias=False),
        )
        self.patient_transformer = _encoder(
            slide_dim, patient_heads, patient_ff, patient_layers, patient_dropout
        )
        self.bottleneck = nn.Sequential(
            nn.Linear(slide_dim, bottleneck), nn.ReLU(), nn.Linear(bottleneck, slide_dim)
        )
        self.patient_head = nn.Sequential(
            nn.LayerNorm(slide_dim), nn.Linear(slide_dim, head_hidden), nn.ReLU(), nn.Dropout(patient_dropout)
        )
        self.init_heads(head_hidden, targets, survival=False, allow_empty=bool(len(self.slide_heads)))

    def train(self, mode: bool = True) -> HMF:
        super().train(mode)
        if self.filter is not None and self.filter_mode == "frozen":
            self.filter.eval()  # a frozen filter has no dropout either
        return self

    # ------------------------------------------------------------------ steps
    def text_embeddings(self) -> Tensor:
        """Embeddings of every class's prompts [T, text_dim] (cached when the encoder is frozen)."""
        if self.text_encoder is None:
            return self.prompt_embeddings
        return self.text_encoder.encode(self.sentences)

    def select_patches(self, batch: Batch, n_slides: int) -> dict[str, Tensor]:
        """Steps 1-2: per-slide filter attention and top-k. -> slide_attn [B, S, N], keep_idx [B, S, k_max],
        keep_mask [B, S, k_max], counts [B, S] (patches of each slide), filter_h [B, N, H] (None without filter)."""
        x, mask = batch.wsi, batch.wsi_mask
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        slide_index = batch.slide_index if batch.slide_index is not None else torch.where(mask, 0, -1)
        member = torch.stack([mask & (slide_index == s) for s in range(n_slides)], dim=1)  # [B, S, N]
        if self.filter is not None:
            h, scores = self.filter(x)
        else:
            h, scores = None, x.new_zeros(x.shape[:2])
        scores = scores.unsqueeze(1).expand_as(member)  # [B, S, N]
        slide_attn = masked_softmax(scores, member, dim=-1)
        counts = member.sum(dim=-1)  # [B, S]
        if self.filter is None:  # no filter: every patch of every slide
            k = counts
        else:
            num, den = ratio_fraction(self.ratio)  # exact integer floor(n * ratio): no float32 rounding
            k = torch.where(counts > 0, torch.clamp(counts.long() * num // den, min=1), 0)
        k_max = max(int(k.max()), 1)
        ranked = (
            scores.float().masked_fill(~member, float("-inf")).argsort(dim=-1, descending=True, stable=True)
        )
        keep_idx = ranked[..., :k_max]  # [B, S, k_max]
        keep_mask = torch.arange(k_max, device=x.device).view(1, 1, -1) < k.unsqueeze(-1)
        return {
            "slide_attn": slide_attn,
            "keep_idx": keep_idx,
            "keep_mask": keep_mask,
            "counts": counts,
            "filter_h": h,
            "member": member,
        }

    def encode_slides(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Steps 2-7 on M slides' kept patches tokens [M, K, D] (mask [M, K]) -> (slide embeddings [M, E],
        image vectors [M, d] and sentence vectors [M, T, d] for the contrastive loss, or None without text)."""
        img = self.image_proj(self.patch_norm(tokens))
        img_vec = txt_vec = None
        if self.use_text:
            text = self.text_proj(self.text_embeddings().to(img.dtype))  # [T, d]
            text = text.unsqueeze(0).expand(img.shape[0], -1, -1)
            img, text, _ = self.bicross(img, mask, text)
            text = F.normalize(self.shared_proj(text), dim=-1)
        z = F.normalize(self.shared_proj(img), dim=-1)  # [M, K, d]
        if self.use_text:
            img_vec = F.normalize(self.contrast_image(masked_mean(z, mask)), dim=-1)
            txt_vec = F.normalize(self.contrast_text(text), dim=-1)
        u = self.token_norm(z + self.token_ffn(z))
        u = self.slide_transformer(u, src_key_padding_mask=~mask)
        return self.slide_embed(masked_mean(u, mask)), img_vec, txt_vec

    def contrastive_loss(self, img_vec: Tensor, txt_vec: Tensor, target: Tensor) -> Tensor:
        """Step 6: img_vec [M, d], txt_vec [M, T, d], target [M] (class of the text label, -1 = unknown) -> scalar:
        mean over labelled slides of (KL(uniform over the true class's sentences || softmax(sim)) + BCE) / 2."""
        sim = torch.einsum("md,mtd->mt", img_vec.float(), txt_vec.float()) / self.temperature  # [M, T]
        known = target >= 0
        if not bool(known.any()):
            return sim.sum() * 0.0
        sim, target = sim[known], target[known]
        positive = (self.prompt_classes.unsqueeze(0) == target.unsqueeze(1)).float()  # [M', T]
        uniform = positive / positive.sum(dim=1, keepdim=True)
        kl = F.kl_div(F.log_softmax(sim, dim=-1), uniform, reduction="none").sum(dim=-1)
        bce = F.binary_cross_entropy_with_logits(sim, positive, reduction="none").mean(dim=-1)
        return (0.5 * (kl + bce)).mean()

    def slide_targets(self, batch: Batch, n_slides: int) -> Tensor | None:
        """Class of the text label per slide [B, S] (-1 = unknown): the slide label, else the patient's label."""
        if self.text_label in batch.slide_labels:
            return batch.slide_labels[self.text_label][:, :n_slides]
        if self.text_label in batch.labels:
            return batch.labels[self.text_label].unsqueeze(1).expand(-1, n_slides)
        return None

    def forward(self, batch: Batch) -> Prediction:
        if batch.n_slides is not None and len(batch.n_slides):
            n_slides = int(batch.n_slides.max())
        else:
            n_slides = int(batch.slide_index.max()) + 1 if batch.slide_index is not None else 1
        n_slides = max(n_slides, 1)
        sel = self.select_patches(batch, n_slides)
        real = sel["counts"] > 0  # [B, S] slides with patches
        b_idx, s_idx = real.nonzero(as_tuple=True)  # the M real slides, patient-major
        idx = sel["keep_idx"][b_idx, s_idx]  # [M, k_max] positions in the patient's bag
        tokens = batch.wsi[b_idx.unsqueeze(1), idx]  # [M, k_max, D]
        keep = sel["keep_mask"][b_idx, s_idx]
        emb, img_vec, txt_vec = self.encode_slides(tokens, keep)

        bsz = batch.wsi.shape[0]
        slides = emb.new_zeros(bsz, n_slides, emb.shape[-1])
        slides[b_idx, s_idx] = emb
        slide_logits = {}
        for name, head in self.slide_heads.items():
            logits = head(emb)
            full = logits.new_zeros(bsz, n_slides, logits.shape[-1])
            full[b_idx, s_idx] = logits
            slide_logits[name] = full

        weights = masked_softmax(self.slide_score(slides).squeeze(-1), real, dim=-1)  # [B, S]
        tokens = slides + self.patient_transformer(slides, src_key_padding_mask=~real)
        pooled = torch.bmm(weights.unsqueeze(1).to(tokens.dtype), tokens).squeeze(1)  # [B, E]
        patient = pooled + self.bottleneck(pooled)
        pred = Prediction(
            **self.predict_heads(self.patient_head(patient)), slide_logits=slide_logits, embedding=patient
        )

        kept = torch.zeros(batch.wsi.shape[:2], device=batch.wsi.device)
        kept[b_idx.unsqueeze(1).expand_as(idx)[keep], idx[keep]] = 1.0
        pred.attention = {
            "slide": weights,
            "slide_patch": sel["slide_attn"],
            "kept": kept,
            "patch": (weights.unsqueeze(-1) * sel["slide_attn"]).sum(dim=1),
        }
        if self.training:
            target = self.slide_targets(batch, n_slides)
            if target is None:
                raise ValueError(
                    f"HMF trains its contrastive / filter loss on {self.text_label!r}, but the batch "
                    f"has labels {sorted(batch.labels)} and slide labels {sorted(batch.slide_labels)}; "
                    f"declare it under data.labels or data.slide_labels"
                )
            if self.use_text:
                pred.aux_losses["contrastive"] = self.contrastive_loss(img_vec, txt_vec, target[b_idx, s_idx])
            if self.filter_head is not None:
                pred.aux_losses["filter"] = self.filter_loss(sel, target)
        return pred

    def filter_loss(self, sel: dict[str, Tensor], target: Tensor) -> Tensor:
        """CLAM's bag loss for a trainable filter: each slide's attention-pooled patch embedding -> CE on target."""
        h = sel["filter_h"]  # [B, N, H]
        pooled = torch.bmm(sel["slide_attn"].to(h.dtype), h)  # [B, S, H]
        known = (target >= 0) & (sel["counts"] > 0)
        if not bool(known.any()):
            return pooled.sum() * 0.0
        return F.cross_entropy(self.filter_head(pooled[known]).float(), target[known])


def ratio_fraction(ratio: float) -> tuple[int, int]:
    """`ratio` as the exact fraction of the decimal it is written as (0.29 -> (29, 100)): numerator, denominator."""
    frac = Fraction(repr(float(ratio)))
    return frac.numerator, frac.denominator


def kept_per_slide(n_patches: int, ratio: float) -> int:
    """Patches a slide of `n_patches` keeps: max(1, floor(n * ratio)) in exact integer arithmetic on the decimal
    ratio (floor(100 * 0.29) = 29, where float64 gives 28 and float32 can be one off on large slides); 0 for an
    empty slide."""
    num, den = ratio_fraction(ratio)
    return 0 if n_patches <= 0 else max(1, n_patches * num // den)


__all__ = ["FILTER_MODES", "HMF", "AttentionFilter", "BiCrossAttention", "kept_per_slide", "ratio_fraction"]
