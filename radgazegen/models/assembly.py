"""A run's trained networks assembled into one pipeline, and exported as a saved pipeline folder.

Training (:mod:`radgazegen.models.train`) writes ``checkpoints/base/final`` and ``checkpoints/controlnet/*/final``;
this module reads them back (with the run's control registry and the base's text encoder) and ends every training
command by saving them as ``<run_dir>/pipeline``.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import DDPMScheduler

from radgazegen.controls.extract import load_registry
from radgazegen.controls.registry import ControlRegistry, ControlSettings
from radgazegen.errors import MissingWeightsError
from radgazegen.io import read_json
from radgazegen.models.controlnet import FUSED, load_controlnet, load_unet
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.models.text import load_text_encoder
from radgazegen.presets import Preset

RUN_PIPELINE = "pipeline"  # <run_dir>/pipeline: the run's networks as a saved RadGazeGenPipeline
TRAINING_FILE = "training.json"  # in base/final: how the base was built (the text encoder's source)


def base_text_source(run_dir: str | Path) -> Path | None:
    """The Stable Diffusion folder the run's base came from (its text encoder and VAE); ``None``: the offline one."""
    info = Path(run_dir) / "checkpoints" / "base" / "final" / TRAINING_FILE
    if not info.is_file():
        raise MissingWeightsError(f"{info.parent}: no trained base model (missing {TRAINING_FILE}); "
                                  "run `radgazegen train --stage base` first")  # fmt: skip
    source = read_json(info, required=("pretrained",))["pretrained"]
    return Path(source) if source else None


def noise_scheduler_for(pretrained: Path | None) -> DDPMScheduler:
    """The training noise schedule: Stable Diffusion's own, else a cosine schedule predicting x0 (pixel space)."""
    if pretrained is not None:
        path = pretrained / "scheduler" / "scheduler_config.json"
        if not path.is_file():
            raise MissingWeightsError(f"{path.parent}: missing scheduler_config.json")
        return DDPMScheduler.from_config(read_json(path))
    # Pixel space: the network predicts the clean image (x0), which a small model learns far better at
    # low noise than the noise itself; dynamic thresholding keeps every sampler's x0 estimate in [-1, 1].
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                         thresholding=True, sample_max_value=1.0)  # fmt: skip


def pipeline_from_run(run_dir: str | Path, preset: Preset, *, scheduler: str | None = None) -> RadGazeGenPipeline:
    """The pipeline a run's ``final/`` folders make: base UNet, every trained ControlNet, the control registry."""
    root = Path(run_dir) / "checkpoints"
    base = root / "base" / "final"
    pretrained = base_text_source(run_dir)
    controlnets, fused, fused_controls = {}, None, []
    for folder in sorted((root / "controlnet").glob("*/final")):
        net, names = load_controlnet(folder)
        if folder.parent.name == FUSED:
            fused, fused_controls = net, names
        else:
            controlnets[names[0]] = net
    registry_file = Path(run_dir) / "controls" / "registry.json"
    registry = (
        load_registry(run_dir) if registry_file.is_file() else ControlRegistry(ControlSettings(preset.control_size))
    )
    if pretrained is not None:
        return RadGazeGenPipeline.from_stable_diffusion(
            pretrained, registry, controlnets=controlnets, fused=fused, fused_controls=fused_controls,
            unet=load_unet(base / "unet"), scheduler=scheduler or preset.sampling.scheduler,
        )  # fmt: skip
    tokenizer, text_encoder = load_text_encoder(None)
    pipe = RadGazeGenPipeline.from_components(
        load_unet(base / "unet"), noise_scheduler_for(None), tokenizer, text_encoder, registry, controlnets=controlnets,
        fused=fused, fused_controls=fused_controls, image_size=preset.control_size,
        max_prompt_tokens=preset.model.max_prompt_tokens,
    )  # fmt: skip
    pipe.set_scheduler(scheduler or preset.sampling.scheduler)
    pipe.source = Path(run_dir)
    return pipe


def export_run(run_dir: str | Path, preset: Preset, out: str | Path | None = None) -> Path:
    """Save the pipeline a run's trained networks make (:func:`pipeline_from_run`) to ``out``
    (default ``<run_dir>/pipeline``, which training rewrites at its end); returns the folder."""
    return pipeline_from_run(run_dir, preset).save_pretrained(Path(out) if out else Path(run_dir) / RUN_PIPELINE)
