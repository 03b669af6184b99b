"""``RadGazeGenPipeline``: text-to-image diffusion steered by gaze and radiomic control maps.

The components are diffusers' own (``UNet2DConditionModel``, ``ControlNetModel`` /
``MultiControlNetModel``, a scheduler, an optional ``AutoencoderKL``) plus a text encoder and the
control registry that normalises raw maps exactly as in training. A pipeline holds any of:

* ``controlnets``: one ControlNet per control (``multi`` mode, the paper's);
* ``fused``: one ControlNet over the stacked controls (``fused`` mode, ours).

Folder layout (``save_pretrained`` / ``from_pretrained``, safetensors only)::

    pipeline.json          class, controls per mode, image size, prompt length, control registry
    unet/  scheduler/  text_encoder/  [tokenizer/]  [vae/]
    controlnets/<control>/ one ControlNet per control (multi)
    controlnets/fused/     the fused ControlNet
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    SchedulerMixin,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
)
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
from tqdm.auto import tqdm

from radgazegen.controls.registry import ControlInputs, ControlRegistry, check_names
from radgazegen.errors import ControlError, DataFormatError, MissingWeightsError, loading
from radgazegen.io import atomic_dir, read_json, write_json_atomic
from radgazegen.models.controlnet import FUSED, folder_name, load_controlnet, load_unet, save_controlnet
from radgazegen.models.text import encode_prompts, load_text_encoder, save_text_encoder

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "unipc": UniPCMultistepScheduler,  # the paper's sampler
    "ddim": DDIMScheduler,
    "dpm": DPMSolverMultistepScheduler,
}
PAPER_NEGATIVE_PROMPT = "monochrome, lowres, bad anatomy, worst quality, low quality"
PAPER_SCALES: dict[str, dict[str, float]] = {
    # the authors' released inference scripts: Rad-CN (canny, sobel, LoG, lungs) then HVA-CN (gaze)
    "reflacx": {"canny": 0.1, "sobel": 0.1, "log": 0.1, "lungs": 0.1, "gaze": 0.001},
    "chexpert": {"canny": 0.01, "sobel": 0.01, "log": 0.01, "lungs": 0.01, "gaze": 0.01},
}
PIPELINE_FILE = "pipeline.json"


@dataclasses.dataclass
class RadGazeGenOutput:
    images: np.ndarray  # (n, height, width) float32 in [0, 1]


PerControl = float | Mapping[str, float]


class RadGazeGenPipeline:
    """Generate chest X-rays from a report prompt and control maps (see the module docstring)."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: SchedulerMixin,
        tokenizer: object,
        text_encoder: torch.nn.Module,
        registry: ControlRegistry,
        *,
        controlnets: Mapping[str, ControlNetModel] | None = None,
        fused: ControlNetModel | None = None,
        fused_controls: Sequence[str] = (),
        vae: AutoencoderKL | None = None,
        image_size: int | None = None,
        max_prompt_tokens: int = 77,
    ) -> None:
        self.unet, self.scheduler, self.vae = unet, scheduler, vae
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.registry = registry
        self.controlnets = dict(controlnets or {})
        self.fused, self.fused_controls = fused, list(fused_controls)
        if fused is not None and len(self.fused_controls) != fused.config.conditioning_channels:
            raise ValueError(f"fused ControlNet has {fused.config.conditioning_channels} channels "
                             f"but {len(self.fused_controls)} controls were named")  # fmt: skip
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        self.image_size = image_size or unet.config.sample_size * self.vae_scale_factor
        self.max_prompt_tokens = max_prompt_tokens
        self.source: Path | None = None

    # -- components -------------------------------------------------------------------------------
    @property
    def modes(self) -> list[str]:
        """The control modes this pipeline can sample with."""
        return [m for m, present in (("multi", self.controlnets), (FUSED, self.fused is not None)) if present]

    def controls_of(self, mode: str) -> list[str]:
        """The controls a mode was trained with."""
        return list(self.controlnets) if mode == "multi" else list(self.fused_controls)

    def modules(self) -> dict[str, torch.nn.Module]:
        found = {"unet": self.unet, "text_encoder": self.text_encoder}
        if self.vae is not None:
            found["vae"] = self.vae
        found.update({f"controlnet:{k}": v for k, v in self.controlnets.items()})
        if self.fused is not None:
            found[FUSED] = self.fused
        return found

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> RadGazeGenPipeline:
        """Move every network (e.g. ``pipe.to("cuda", torch.float16)``); returns the pipeline."""
        for module in self.modules().values():
            module.to(device=device, **({"dtype": dtype} if dtype is not None else {}))
        return self

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def digest(self, mode: str, controls: Sequence[str]) -> str:
        """SHA-256 of what sampling ``controls`` in ``mode`` depends on: every weight it uses, the registry, the sizes.

        The UNet, text encoder and VAE, plus the ControlNets of ``controls`` (``multi``) or the fused one;
        the registry's settings and scalings; image size and prompt length. Retraining into the same folder
        changes it, so a cache keyed on it (the sample bank) never serves images of older weights.
        """
        sha = hashlib.sha256()
        networks = {"unet": self.unet, "text_encoder": self.text_encoder, "vae": self.vae}
        if controls and mode == FUSED:
            networks[FUSED] = self.fused
        elif controls:
            networks |= {f"controlnet:{name}": self.controlnets.get(name) for name in controls}
        for name, network in networks.items():
            sha.update(name.encode())
            if network is None:
                continue
            for key, tensor in network.state_dict().items():
                sha.update(key.encode())
                sha.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        about = {"mode": mode, "controls": list(controls), "registry": self.registry.to_dict(),
                 "image_size": self.image_size, "max_prompt_tokens": self.max_prompt_tokens}  # fmt: skip
        sha.update(json.dumps(about, sort_keys=True, default=str).encode())
        return sha.hexdigest()

    def set_scheduler(self, name: str) -> None:
        """Switch the sampler: ``"unipc"`` (default, the paper's), ``"ddim"`` or ``"dpm"`` (DPM-Solver++)."""
        self.scheduler = _scheduler(name, self.scheduler.config)

    def control_maps(
        self, names: Sequence[str], image: np.ndarray, fixations=None, lungs=None
    ) -> dict[str, np.ndarray]:
        """Controls extracted from a new image (and gaze / lung mask) and normalised as in training."""
        inputs = ControlInputs(image=image, fixations=fixations, lungs=lungs)
        return self.registry.controls(names, inputs, device=self.device)

    # -- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        controls: Mapping[str, np.ndarray | torch.Tensor] | None = None,
        *,
        control_scales: PerControl = 1.0,
        control_guidance_start: PerControl = 0.0,
        control_guidance_end: PerControl = 1.0,
        mode: str | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 2.0,
        guidance_interval: tuple[float, float] = (0.0, 1.0),
        negative_prompt: str | Sequence[str] | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        num_images_per_prompt: int = 1,
        progress: bool = True,
    ) -> RadGazeGenOutput:
        """Sample images for ``prompt`` steered by ``controls`` (``{name: (H, W) or (n, H, W) map in [0, 1]}``).

        ``controls=None`` or ``{}`` samples from text alone. ``control_scales`` and the guidance
        window (fractions of the steps during which a control acts) are one value or one per
        control; as in diffusers, a control acts at step ``i`` of ``n`` unless ``i / n < start`` or
        ``(i + 1) / n > end``. In ``fused`` mode a control's scale multiplies its input channel and a missing
        control is an all-zero channel. ``generator`` may be one per image (then an image does not
        depend on the batch it is sampled in).

        ``guidance_interval``: the fractions of the steps, by the same rule, during which classifier-free guidance
        applies (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval"); outside it a step evaluates
        the conditional branch alone, at half the cost of a guided step.
        """
        prompts = _check_prompts(prompt)
        _check_count("num_images_per_prompt", num_images_per_prompt)
        _check_count("num_inference_steps", num_inference_steps)
        _check_window("guidance_interval", *guidance_interval, num_inference_steps)
        if not math.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        n = len(prompts) * num_images_per_prompt
        prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        if controls is not None and not isinstance(controls, Mapping):
            raise ControlError(f"controls must be a mapping {{name: map}}, got {type(controls).__name__}")
        controls = dict(controls or {})
        mode = mode or (self.modes[0] if controls and self.modes else "multi")
        conditioning = self._check_controls(controls, mode, n)
        self._check_per_control(control_scales, control_guidance_start, control_guidance_end, mode, num_inference_steps)
        negatives = self._negatives(negative_prompt, len(prompts) // num_images_per_prompt, num_images_per_prompt)
        prompt_states = self.encode(prompts)
        both = torch.cat([self.encode(negatives), prompt_states]) if guidance_scale > 1.0 else prompt_states
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        channels = self.unet.config.in_channels
        size = self.image_size // self.vae_scale_factor
        latents = _initial_noise((n, channels, size, size), generator).to(self.device)
        latents = (latents * self.scheduler.init_noise_sigma).to(self.dtype)
        steps = len(self.scheduler.timesteps)
        for index, t in enumerate(tqdm(self.scheduler.timesteps, desc="sampling", leave=False, disable=not progress)):
            guided = guidance_scale > 1.0 and bool(_keep(index, steps, *guidance_interval))
            states = both if guided else prompt_states
            model_input = torch.cat([latents] * 2) if guided else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            down, mid = self._residuals(model_input, t, states, conditioning, mode, guided, index, steps,
                                        control_scales, control_guidance_start, control_guidance_end)  # fmt: skip
            noise = self.unet(model_input, t, encoder_hidden_states=states, down_block_additional_residuals=down,
                              mid_block_additional_residual=mid).sample  # fmt: skip
            if guided:
                unconditional, conditional = noise.chunk(2)
                noise = unconditional + guidance_scale * (conditional - unconditional)
            latents = self.scheduler.step(noise, t, latents).prev_sample
        return RadGazeGenOutput(self._decode(latents))

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        states = encode_prompts(self.tokenizer, self.text_encoder, prompts, self.max_prompt_tokens)
        return states.to(self.device, self.dtype)

    def _negatives(self, negative: str | Sequence[str] | None, prompts: int, per_prompt: int) -> list[str]:
        if negative is None or isinstance(negative, str):
            return [negative or ""] * prompts * per_prompt
        if len(negative) != prompts:
            raise ValueError(f"{len(negative)} negative prompts for {prompts} prompts")
        return [p for p in negative for _ in range(per_prompt)]

    def _check_controls(self, controls: dict, mode: str, n: int) -> dict[str, torch.Tensor]:
        """Validate the given maps; returns ``{name: (n, 1, H, W) tensor}`` on the pipeline's device."""
        if controls and mode not in self.modes:
            raise ControlError(f"this pipeline has no {mode!r} ControlNets (it has: {self.modes or 'none'})")
        trained = self.controls_of(mode)
        checked = {}
        try:
            check_names(controls)
        except ValueError as err:
            raise ControlError(str(err)) from None
        for name, values in controls.items():
            if not isinstance(values, np.ndarray | torch.Tensor):
                raise ControlError(f"control {name!r} must be an array (numpy or torch), got {type(values).__name__}")
            if name not in trained:
                raise ControlError(f"control {name!r} was not trained in {mode!r} mode; this pipeline's {mode} "
                                   f"controls are {trained}")  # fmt: skip
            array = torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values).float()
            expected = (self.image_size, self.image_size)
            if array.ndim == 2:
                array = array[None]
            if array.ndim != 3 or tuple(array.shape[1:]) != expected or array.shape[0] not in (1, n):
                raise ControlError(f"control {name!r} has shape {tuple(np.shape(values))}; expected {expected} "
                                   f"or ({n}, {expected[0]}, {expected[1]})")  # fmt: skip
            if not torch.isfinite(array).all() or array.min() < -1e-6 or array.max() > 1 + 1e-6:
                raise ControlError(f"control {name!r} must be finite and in [0, 1] (normalised as in training: "
                                   f"registry.normalise); got range [{array.min():.3g}, {array.max():.3g}]")  # fmt: skip
            checked[name] = array.expand(n, *expected)[:, None].to(self.device, self.dtype)
        return checked

    def _check_per_control(self, scales: PerControl, starts: PerControl, ends: PerControl, mode: str, steps: int
                           ) -> None:  # fmt: skip
        """Scales finite, windows ``0 <= start < end <= 1``, and every named control one the pipeline has."""
        known = self.controls_of(mode)
        for name, values in (("control_scales", scales), ("control_guidance_start", starts),
                             ("control_guidance_end", ends)):  # fmt: skip
            if isinstance(values, Mapping):
                unknown = [key for key in values if key not in known]
                if unknown:
                    raise ControlError(f"{name} names control(s) {unknown} this pipeline has no {mode} ControlNet "
                                       f"for; its {mode} controls are {known}")  # fmt: skip
            for value in values.values() if isinstance(values, Mapping) else [values]:
                if not isinstance(value, Real) or not math.isfinite(value):
                    raise ValueError(f"{name} must hold finite numbers, got {value!r}")
        for control in known:
            _check_window(f"control guidance window of {control!r}", _value(starts, control, 0.0),
                          _value(ends, control, 1.0), steps)  # fmt: skip

    def _residuals(self, sample, t, states, conditioning, mode, guided, index, steps, scales, starts, ends):
        """Summed ControlNet residuals for this step (``(None, None)`` when no control acts)."""
        active = {name: _value(scales, name, 1.0) * _keep(index, steps, _value(starts, name, 0.0), _value(ends, name, 1.0))
                  for name in conditioning}  # fmt: skip
        if not any(active.values()):
            return None, None
        twice = (lambda x: torch.cat([x] * 2)) if guided else (lambda x: x)
        if mode == FUSED:
            stacked = torch.cat([conditioning[name] * active[name] if name in conditioning
                                 else torch.zeros_like(next(iter(conditioning.values())))
                                 for name in self.fused_controls], dim=1)  # fmt: skip
            return self.fused(sample, t, states, controlnet_cond=twice(stacked), return_dict=False)
        names = [name for name in conditioning if active[name]]
        nets = MultiControlNetModel([self.controlnets[name] for name in names])
        return nets(sample, t, states, controlnet_cond=[twice(conditioning[name]) for name in names],
                    conditioning_scale=[float(active[name]) for name in names], return_dict=False)  # fmt: skip

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        if self.vae is not None:
            latents = latents / self.vae.config.scaling_factor
            images = self.vae.decode(latents.to(self.vae.dtype)).sample
        else:
            images = latents
        return ((images.float().clamp(-1, 1) + 1) / 2).mean(dim=1).cpu().numpy()  # grey: mean of RGB channels

    # -- persistence ------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write every component (safetensors) and ``pipeline.json``; returns ``folder``.

        Everything is written to a staging folder that then replaces ``folder``: an interrupted save
        leaves the previous pipeline (or nothing), never half of one.
        """
        with atomic_dir(folder) as staging:
            self.write_components(staging)
        return Path(folder)

    def write_components(self, folder: Path) -> None:
        """Every component and ``pipeline.json`` into an existing (staging) ``folder``."""
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(folder / "scheduler")
        save_text_encoder(self.tokenizer, self.text_encoder, folder)
        if self.vae is not None:
            self.vae.save_pretrained(folder / "vae", safe_serialization=True)
        for name, net in self.controlnets.items():
            save_controlnet(net, folder / "controlnets" / folder_name(name), [name])
        if self.fused is not None:
            save_controlnet(self.fused, folder / "controlnets" / FUSED, self.fused_controls)
        write_json_atomic(folder / PIPELINE_FILE, {
            "_class_name": type(self).__name__, "multi": list(self.controlnets), FUSED: self.fused_controls,
            "image_size": self.image_size, "max_prompt_tokens": self.max_prompt_tokens,
            "registry": self.registry.to_dict()})  # fmt: skip

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, scheduler: str = "unipc", dtype: torch.dtype | None = None
    ) -> RadGazeGenPipeline:
        """Load a folder written by :meth:`save_pretrained`; errors name the missing folder or file."""
        folder = Path(folder)
        if not (folder / PIPELINE_FILE).is_file():
            raise MissingWeightsError(f"{folder}: missing {PIPELINE_FILE} (not a saved RadGazeGenPipeline)")
        config = read_json(folder / PIPELINE_FILE,
                           required=("multi", FUSED, "image_size", "max_prompt_tokens", "registry"))  # fmt: skip
        try:
            registry = ControlRegistry.from_dict(config["registry"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(folder / PIPELINE_FILE, f"invalid 'registry' entry ({err!r})") from None
        unet = load_unet(folder / "unet", dtype)
        tokenizer, text_encoder = load_text_encoder(folder)
        controlnets = {}
        for name in config["multi"]:
            net, _ = load_controlnet(folder / "controlnets" / folder_name(name), dtype)
            controlnets[name] = net
        fused = load_controlnet(folder / "controlnets" / FUSED, dtype)[0] if config[FUSED] else None
        vae = None
        if (folder / "vae").is_dir():
            with loading(folder / "vae"):
                vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype)
        pipe = cls(
            unet,
            _load_scheduler(folder / "scheduler", scheduler),
            tokenizer,
            text_encoder.to(dtype=dtype),
            registry,
            controlnets=controlnets,
            fused=fused,
            fused_controls=config[FUSED],
            vae=vae,
            image_size=config["image_size"],
            max_prompt_tokens=config["max_prompt_tokens"],
        )
        pipe.source = folder
        return pipe

    @classmethod
    def from_stable_diffusion(
        cls,
        folder: str | Path,
        registry: ControlRegistry,
        *,
        controlnets: Mapping[str, ControlNetModel] | None = None,
        fused: ControlNetModel | None = None,
        fused_controls: Sequence[str] = (),
        unet: UNet2DConditionModel | None = None,
        scheduler: str = "unipc",
        dtype: torch.dtype | None = None,
    ) -> RadGazeGenPipeline:
        """Components from a local Stable Diffusion folder (diffusers layout: unet/ vae/ text_encoder/ tokenizer/ scheduler/).

        ``unet`` replaces the folder's (e.g. a fine-tuned one); ``controlnets`` / ``fused`` add ControlNets.
        """
        folder = Path(folder)
        for sub in ("unet", "vae", "scheduler"):
            if not (folder / sub).is_dir():
                raise MissingWeightsError(f"{folder / sub}: missing; a Stable Diffusion folder has {sub}/")
        tokenizer, text_encoder = load_text_encoder(folder)
        with loading(folder / "vae"):
            vae = AutoencoderKL.from_pretrained(folder / "vae", use_safetensors=True, torch_dtype=dtype)
        pipe = cls(
            unet if unet is not None else load_unet(folder / "unet", dtype),
            _load_scheduler(folder / "scheduler", scheduler),
            tokenizer,
            text_encoder.to(dtype=dtype),
            registry,
            controlnets=controlnets,
            fused=fused,
            fused_controls=fused_controls,
            vae=vae,
            max_prompt_tokens=tokenizer.model_max_length,
        )
        pipe.source = folder
        return pipe

    def to_diffusers(self):
        """The same components as diffusers' ``StableDiffusionControlNetPipeline`` (multi mode; latent models only)."""
        from diffusers import StableDiffusionControlNetPipeline

        if self.vae is None:
            raise ValueError("StableDiffusionControlNetPipeline needs a VAE; this pipeline works in pixel space")
        nets = list(self.controlnets.values())
        return StableDiffusionControlNetPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
            controlnet=nets[0] if len(nets) == 1 else MultiControlNetModel(nets), scheduler=self.scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip


def _check_prompts(prompt: str | Sequence[str]) -> list[str]:
    """``prompt`` as a non-empty list of strings, else a ``ValueError`` saying what was given."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, Sequence) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
    return list(prompts)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_window(name: str, start: float, end: float, steps: int) -> None:
    """A window of the steps as fractions, ``0 <= start < end <= 1``, holding one of ``steps`` or more (:func:`_keep`)."""
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"{name} ({start}, {end}) must be (start, end) with 0 <= start < end <= 1")
    if not any(_keep(index, steps, start, end) for index in range(steps)):
        raise ValueError(f"{name} ({start}, {end}) holds none of the {steps} steps; widen it or take more steps")


def _initial_noise(
    shape: tuple[int, ...], generator: torch.Generator | Sequence[torch.Generator] | None
) -> torch.Tensor:
    """Gaussian noise drawn on the CPU (so CPU and GPU runs start from the same seeds)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for {shape[0]} images")
    return torch.cat([torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32) for g in generator])


def _keep(index: int, steps: int, start: float, end: float) -> float:
    """1 while a control acts at step ``index`` of ``steps``, else 0: diffusers' ``controlnet_keep`` rule,
    ``1 - (index / steps < start or (index + 1) / steps > end)``."""
    return 1.0 - float(index / steps < start or (index + 1) / steps > end)


def _value(values: PerControl, name: str, default: float) -> float:
    return float(values.get(name, default)) if isinstance(values, Mapping) else float(values)


def _scheduler(name: str, config) -> SchedulerMixin:
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
    return SCHEDULERS[name].from_config(config)


def _load_scheduler(folder: Path, name: str) -> SchedulerMixin:
    path = folder / "scheduler_config.json"
    if not path.is_file():
        raise MissingWeightsError(f"{folder}: missing scheduler_config.json")
    return _scheduler(name, read_json(path))
