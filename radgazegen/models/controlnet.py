"""Build, save and load the generator's networks: the base UNet and the ControlNets (``multi`` or ``fused``).

* ``multi`` (the paper): one :class:`~diffusers.ControlNetModel` per control with one conditioning
  channel each, combined at sampling time by :class:`~diffusers.models.controlnets.MultiControlNetModel`
  (residuals summed, each weighted by its own conditioning scale).
* ``fused`` (ours): one ControlNet whose conditioning input stacks every control as a channel.

ControlNets are initialised from the base UNet (``ControlNetModel.from_unet``), as in the paper.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from radgazegen.errors import MissingWeightsError, loading
from radgazegen.io import read_json
from radgazegen.presets import ModelSettings

CONTROL_MODES = ("multi", "fused")
FUSED = "fused"
_EMBEDDING_CHANNELS = (16, 32, 96, 256)  # diffusers' default conditioning embedding (8x downsampling)


def build_unet(settings: ModelSettings, image_size: int, cross_attention_dim: int) -> UNet2DConditionModel:
    """A text-conditioned pixel-space UNet (one grey channel) built from a preset's model settings."""
    if len(settings.block_out_channels) != len(settings.attention_levels):
        raise ValueError("block_out_channels and attention_levels must have one entry per UNet level")
    downs = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in settings.attention_levels)
    ups = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(settings.attention_levels))
    return UNet2DConditionModel(
        sample_size=image_size,
        in_channels=1,
        out_channels=1,
        block_out_channels=settings.block_out_channels,
        layers_per_block=settings.layers_per_block,
        down_block_types=downs,
        up_block_types=ups,
        mid_block_type="UNetMidBlock2DCrossAttn" if settings.attention_levels[-1] else "UNetMidBlock2D",
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=settings.attention_head_dim,
        norm_num_groups=settings.norm_num_groups,
    )


def controlnet_from_unet(unet: UNet2DConditionModel, channels: int, downscale: int) -> ControlNetModel:
    """A ControlNet copying the UNet's encoder, taking ``channels`` control maps at ``downscale`` x the sample size.

    ``downscale`` is the VAE factor (8 for Stable Diffusion, 1 in pixel space): the conditioning
    embedding has one stride-2 convolution per factor of two, so controls enter at image resolution.
    """
    steps = int(math.log2(downscale))
    if 2**steps != downscale or steps >= len(_EMBEDDING_CHANNELS):
        raise ValueError(f"downscale must be 1, 2, 4 or 8, got {downscale}")
    return ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=_EMBEDDING_CHANNELS[: steps + 1], conditioning_channels=channels
    )


def folder_name(control: str) -> str:
    """The folder a control's ControlNet is saved in (``texture:glcm_Contrast`` -> ``texture_glcm_Contrast``)."""
    return control.replace(":", "_")


def save_controlnet(net: ControlNetModel, folder: str | Path, controls: Sequence[str]) -> None:
    """``save_pretrained`` (safetensors) plus ``controls.json`` naming the control of each input channel."""
    folder = Path(folder)
    net.save_pretrained(folder, safe_serialization=True)
    (folder / "controls.json").write_text(json.dumps({"controls": list(controls)}) + "\n")


def load_controlnet(folder: str | Path, dtype: torch.dtype | None = None) -> tuple[ControlNetModel, list[str]]:
    """A saved ControlNet and the controls of its input channels; errors name the missing file."""
    folder = Path(folder)
    for name in ("config.json", "diffusion_pytorch_model.safetensors", "controls.json"):
        if not (folder / name).is_file():
            raise MissingWeightsError(f"{folder}: missing {name} (not a saved radgazegen ControlNet)")
    with loading(folder / "diffusion_pytorch_model.safetensors"):
        net = ControlNetModel.from_pretrained(folder, use_safetensors=True, torch_dtype=dtype)
    controls = read_json(folder / "controls.json", required=("controls",))["controls"]
    if len(controls) != net.config.conditioning_channels:
        raise MissingWeightsError(f"{folder / 'controls.json'}: {len(controls)} controls for "
                                  f"{net.config.conditioning_channels} conditioning channels")  # fmt: skip
    return net.eval(), controls


def load_unet(folder: str | Path, dtype: torch.dtype | None = None) -> UNet2DConditionModel:
    """A saved UNet (``save_pretrained`` layout, safetensors); errors name the missing file."""
    folder = Path(folder)
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        if not (folder / name).is_file():
            raise MissingWeightsError(f"{folder}: missing {name} (expected a diffusers UNet folder)")
    with loading(folder / "diffusion_pytorch_model.safetensors"):
        return UNet2DConditionModel.from_pretrained(folder, use_safetensors=True, torch_dtype=dtype).eval()
