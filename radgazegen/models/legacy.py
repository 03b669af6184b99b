"""Read pipeline folders in the format radgazegen wrote before it became a diffusers ``DiffusionPipeline``.

That format has ``pipeline.json`` (controls per mode, image size, prompt length, control registry) instead of
``model_index.json``, and ``controlnets/<control>/`` folders (each with ``controls.json``) instead of
``controlnet/``, ``controlnet_1/`` .... Loading one and saving it again converts it
(``radgazegen export --pipeline OLD --out NEW``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL

from radgazegen.controls.registry import ControlRegistry
from radgazegen.errors import DataFormatError, loading
from radgazegen.io import read_json
from radgazegen.models.controlnet import FUSED, folder_name, load_controlnet, load_unet
from radgazegen.models.schedulers import load_scheduler
from radgazegen.models.text import load_text_encoder

LEGACY_FILE = "pipeline.json"


def load_legacy(cls: type, folder: Path, dtype: torch.dtype | None = None):
    """A ``cls`` (``RadGazeGenPipeline``) pipeline from a ``pipeline.json`` folder; errors name the file."""
    config = read_json(folder / LEGACY_FILE, required=("multi", FUSED, "image_size", "max_prompt_tokens", "registry"))
    try:
        registry = ControlRegistry.from_dict(config["registry"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataFormatError(folder / LEGACY_FILE, f"invalid 'registry' entry ({err!r})") from None
    unet = load_unet(folder / "unet", dtype)
    tokenizer, text_encoder = load_text_encoder(folder)
    controlnets = {name: load_controlnet(folder / "controlnets" / folder_name(name), dtype)[0]
                   for name in config["multi"]}  # fmt: skip
    fused = load_controlnet(folder / "controlnets" / FUSED, dtype)[0] if config[FUSED] else None
    vae = None
    if (folder / "vae").is_dir():
        with loading(folder / "vae"):
            vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype)
    return cls.from_components(
        unet, load_scheduler(folder / "scheduler", None), tokenizer, text_encoder.to(dtype=dtype), registry,
        controlnets=controlnets, fused=fused, fused_controls=config[FUSED], vae=vae, image_size=config["image_size"],
        max_prompt_tokens=config["max_prompt_tokens"],
    )  # fmt: skip
