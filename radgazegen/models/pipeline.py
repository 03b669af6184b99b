"""``RadGazeGenPipeline``: a diffusers ``DiffusionPipeline`` steered by gaze and radiomic control maps.

Components (``register_modules``; diffusers' own classes): ``unet``, ``scheduler``, ``tokenizer`` and
``text_encoder``, an optional ``vae`` (latent models), ``controlnet`` (a ``MultiControlNetModel``, one
ControlNet per control: ``multi`` mode, the paper's) and an optional ``fused_controlnet`` (one ControlNet
over the stacked controls: ``fused`` mode, ours). The configuration (``register_to_config``) names the
controls of each mode and holds the control registry, which normalises raw maps exactly as in training.

``save_pretrained`` writes diffusers' layout, safetensors only, staged and renamed into place::

    model_index.json       components, controls per mode, image size, prompt length, control registry
    pipeline_radgazegen.py the two-line module that lets ``DiffusionPipeline.from_pretrained`` find this class
    unet/  scheduler/  [vae/]  [text_encoder/ tokenizer/]
    controlnet/  controlnet_1/ ...   the multi-mode ControlNets, in the order of ``controls``
    fused_controlnet/

so that ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` and
``RadGazeGenPipeline.from_pretrained(folder)`` both load it. The packaged offline text encoder (MiniLM,
:mod:`radgazegen.models.text`) is named in the configuration (``packaged_text_encoder``), not copied.
Folders in the earlier ``pipeline.json`` format still load (:mod:`radgazegen.models.legacy`), with a
warning naming the command that converts them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DiffusionPipeline,
    SchedulerMixin,
    UNet2DConditionModel,
)
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
from diffusers.utils import BaseOutput
from diffusers.utils import logging as diffusers_logging
from tqdm.auto import tqdm

from radgazegen.controls.registry import ControlInputs, ControlRegistry, ControlSettings, check_names
from radgazegen.errors import ControlError, DataFormatError, MissingWeightsError, loading
from radgazegen.io import atomic_dir, read_json
from radgazegen.models.controlnet import FUSED
from radgazegen.models.schedulers import load_scheduler, scheduler_named
from radgazegen.models.text import PACKAGED_MINILM, encode_prompts, is_packaged_minilm, load_text_encoder

PAPER_NEGATIVE_PROMPT = "monochrome, lowres, bad anatomy, worst quality, low quality"
PAPER_SCALES: dict[str, dict[str, float]] = {
    # the authors' released inference scripts: Rad-CN (canny, sobel, LoG, lungs) then HVA-CN (gaze)
    "reflacx": {"canny": 0.1, "sobel": 0.1, "log": 0.1, "lungs": 0.1, "gaze": 0.001},
    "chexpert": {"canny": 0.01, "sobel": 0.01, "log": 0.01, "lungs": 0.01, "gaze": 0.01},
}
MODEL_INDEX = "model_index.json"
CODE_MODULE = "pipeline_radgazegen"
"""The module ``save_pretrained`` writes beside ``model_index.json`` (its ``_class_name`` names it)."""
CODE = '"""Lets diffusers\' DiffusionPipeline.from_pretrained find the RadGazeGen pipeline class."""\n\n' \
       "from radgazegen.models.pipeline import RadGazeGenPipeline  # noqa: F401\n"  # fmt: skip
LIBRARIES = ("diffusers", "transformers")  # where model_index.json's components come from
OUTPUT_TYPES = ("grey", "np", "pt", "pil", "latent")


@dataclass
class RadGazeGenOutput(BaseOutput):
    """``images``: ``(n, H, W)`` float32 in [0, 1] (``"grey"``, the mean of the channels), ``(n, H, W, C)``
    (``"np"``), an ``(n, C, H, W)`` tensor (``"pt"``), PIL images (``"pil"``) or the final latents (``"latent"``)."""

    images: np.ndarray | torch.Tensor | list[PIL.Image.Image]


PerControl = float | Mapping[str, float]


class RadGazeGenPipeline(DiffusionPipeline):
    """Generate chest X-rays from a report prompt and control maps (see the module docstring).

    Build one from networks with :meth:`from_components`; load one with :meth:`from_pretrained`.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"  # ControlNets are offloaded on their own, as in diffusers
    _optional_components = ["tokenizer", "text_encoder", "vae", "controlnet", "fused_controlnet"]
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: SchedulerMixin,
        tokenizer: object | None = None,
        text_encoder: torch.nn.Module | None = None,
        vae: AutoencoderKL | None = None,
        controlnet: MultiControlNetModel | ControlNetModel | Sequence[ControlNetModel] | None = None,
        fused_controlnet: ControlNetModel | None = None,
        controls: list[str] | tuple[str, ...] = (),
        fused_controls: list[str] | tuple[str, ...] = (),
        control_registry: dict | None = None,
        image_size: int | None = None,
        max_prompt_tokens: int = 77,
        packaged_text_encoder: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(controlnet, ControlNetModel | list | tuple):
            controlnet = MultiControlNetModel([controlnet] if isinstance(controlnet, ControlNetModel) else controlnet)
        for named in (controls, fused_controls):  # known controls, none twice in a mode
            check_names(named)
        nets = len(controlnet.nets) if controlnet is not None else 0
        if nets != len(controls):
            raise ValueError(f"{nets} ControlNets but {len(controls)} controls were named ({list(controls)})")
        if fused_controlnet is not None and len(fused_controls) != fused_controlnet.config.conditioning_channels:
            raise ValueError(f"fused ControlNet has {fused_controlnet.config.conditioning_channels} channels "
                             f"but {len(fused_controls)} controls were named")  # fmt: skip
        if packaged_text_encoder is None and is_packaged_minilm(text_encoder):
            packaged_text_encoder = PACKAGED_MINILM
        if packaged_text_encoder is not None and text_encoder is None:
            tokenizer, text_encoder = load_text_encoder(None)
        if text_encoder is None or tokenizer is None:
            raise MissingWeightsError("a RadGazeGenPipeline needs a tokenizer and a text encoder (or "
                                      f"packaged_text_encoder={PACKAGED_MINILM!r})")  # fmt: skip
        packaged = packaged_text_encoder is not None
        self.register_modules(unet=unet, scheduler=scheduler, vae=vae, controlnet=controlnet,
                              fused_controlnet=fused_controlnet, tokenizer=None if packaged else tokenizer,
                              text_encoder=None if packaged else text_encoder)  # fmt: skip
        if packaged:  # held, but recorded as absent: save_pretrained names the package instead of copying it
            self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        image_size = image_size or unet.config.sample_size * self.vae_scale_factor
        if isinstance(control_registry, ControlRegistry):
            control_registry = control_registry.to_dict()
        self.registry = (
            ControlRegistry.from_dict(control_registry) if control_registry
            else ControlRegistry(ControlSettings(size=image_size))
        )  # fmt: skip
        self.register_to_config(controls=list(controls), fused_controls=list(fused_controls),
                                control_registry=self.registry.to_dict(), image_size=image_size,
                                max_prompt_tokens=max_prompt_tokens, packaged_text_encoder=packaged_text_encoder)  # fmt: skip
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.source: Path | None = None

    @classmethod
    def from_components(
        cls,
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
    ) -> RadGazeGenPipeline:
        """A pipeline of these networks: ``controlnets`` ``{control: ControlNet}`` (multi), ``fused`` over ``fused_controls``."""
        controlnets = dict(controlnets or {})
        return cls(unet, scheduler, tokenizer, text_encoder, vae,
                   controlnet=MultiControlNetModel(list(controlnets.values())) if controlnets else None,
                   fused_controlnet=fused, controls=list(controlnets), fused_controls=fused_controls,
                   control_registry=registry.to_dict(), image_size=image_size,
                   max_prompt_tokens=max_prompt_tokens)  # fmt: skip

    # -- components -------------------------------------------------------------------------------
    @property
    def controlnets(self) -> dict[str, ControlNetModel]:
        """The multi-mode ControlNets by control, in the order they were given."""
        return dict(zip(self.config.controls, self.controlnet.nets, strict=True)) if self.controlnet else {}

    @property
    def fused(self) -> ControlNetModel | None:
        return self.fused_controlnet

    @property
    def fused_controls(self) -> list[str]:
        return list(self.config.fused_controls)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    @property
    def max_prompt_tokens(self) -> int:
        return int(self.config.max_prompt_tokens)

    @property
    def modes(self) -> list[str]:
        """The control modes this pipeline can sample with."""
        return [m for m, present in (("multi", self.controlnets), (FUSED, self.fused is not None)) if present]

    def controls_of(self, mode: str) -> list[str]:
        """The controls a mode was trained with."""
        return list(self.config.controls) if mode == "multi" else self.fused_controls

    def with_controlnets(self, controlnets: Mapping[str, ControlNetModel]) -> RadGazeGenPipeline:
        """A pipeline sharing every other network whose multi-mode ControlNets are ``controlnets``."""
        other = type(self).from_components(
            self.unet, self.scheduler, self.tokenizer, self.text_encoder, self.registry, controlnets=controlnets,
            fused=self.fused, fused_controls=self.fused_controls, vae=self.vae, image_size=self.image_size,
            max_prompt_tokens=self.max_prompt_tokens,
        )  # fmt: skip
        other.source = self.source
        return other

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
        self.scheduler = scheduler_named(name, self.scheduler.config)

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
        prompt: str | Sequence[str] | None = None,
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
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "grey",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        progress: bool = True,
    ) -> RadGazeGenOutput | tuple:
        """Sample images for ``prompt`` steered by ``controls`` (``{name: map}``, each map in [0, 1]).

        A map is ``(H, W)`` or ``(n, H, W)``, repeated over the ControlNet's conditioning channels, or
        ``(n, C, H, W)`` with the channels given (multi mode). ``controls=None`` or ``{}`` samples from text
        alone. ``control_scales`` and the guidance window (fractions of the steps during which a control acts)
        are one value or one per control; as in diffusers, a control acts at step ``i`` of ``n`` unless
        ``i / n < start`` or ``(i + 1) / n > end``. In ``fused`` mode a control's scale multiplies its input
        channel and a missing control is an all-zero channel. ``generator`` may be one per image (then an
        image does not depend on the batch it is sampled in).

        ``guidance_interval``: the fractions of the steps, by the same rule, during which classifier-free guidance
        applies (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval"); outside it a step evaluates
        the conditional branch alone, at half the cost of a guided step.

        As in diffusers: ``prompt_embeds`` / ``negative_prompt_embeds`` replace the prompts' token states,
        ``latents`` the initial noise, ``callback_on_step_end(pipe, step, timestep, tensors)`` runs after each
        step with the named tensors and may return replacements; ``output_type`` is ``"grey"`` (default),
        ``"np"``, ``"pt"``, ``"pil"`` or ``"latent"``; ``return_dict=False`` returns ``(images,)``.
        """
        if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs {unknown} are not among {self._callback_tensor_inputs}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        _check_count("num_images_per_prompt", num_images_per_prompt)
        _check_count("num_inference_steps", num_inference_steps)
        _check_window("guidance_interval", *guidance_interval, num_inference_steps)
        if not math.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        guided_anywhere = guidance_scale > 1.0
        prompt_states, negative_states = self._prompt_states(
            prompt, prompt_embeds, negative_prompt, negative_prompt_embeds, num_images_per_prompt, guided_anywhere
        )
        n = len(prompt_states)
        if controls is not None and not isinstance(controls, Mapping):
            raise ControlError(f"controls must be a mapping {{name: map}}, got {type(controls).__name__}")
        controls = dict(controls or {})
        mode = mode or (self.modes[0] if controls and self.modes else "multi")
        conditioning = self._check_controls(controls, mode, n)
        self._check_per_control(control_scales, control_guidance_start, control_guidance_end, mode, num_inference_steps)
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        latents = self._initial_latents(n, latents, generator)
        steps = len(self.scheduler.timesteps)
        bar = {**getattr(self, "_progress_bar_config", {}), **({} if progress else {"disable": True})}
        both = torch.cat([negative_states, prompt_states]) if guided_anywhere else None  # rebuilt after a callback
        for index, t in enumerate(tqdm(self.scheduler.timesteps, **{"desc": "sampling", "leave": False, **bar})):
            guided = guided_anywhere and bool(_keep(index, steps, *guidance_interval))
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
            if callback_on_step_end is not None:
                tensors = {"latents": latents, "prompt_embeds": prompt_states, "negative_prompt_embeds": negative_states}
                returned = callback_on_step_end(self, index, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs})
                latents = returned.pop("latents", latents)
                prompt_states = returned.pop("prompt_embeds", prompt_states)
                negative_states = returned.pop("negative_prompt_embeds", negative_states)
                both = torch.cat([negative_states, prompt_states]) if guided_anywhere else None
        images = self._output(latents, output_type)
        self.maybe_free_model_hooks()
        return RadGazeGenOutput(images) if return_dict else (images,)

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token states of ``prompts`` on the pipeline's device and dtype."""
        states = encode_prompts(self.tokenizer, self.text_encoder, prompts, self.max_prompt_tokens)
        return states.to(self._execution_device, self.dtype)

    def _prompt_states(self, prompt, prompt_embeds, negative, negative_embeds, per_prompt: int, guided: bool
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """Token states of the prompts and negative prompts, each repeated ``per_prompt`` times."""
        if prompt_embeds is None:
            prompts = _check_prompts(prompt)
            prompt_embeds = self.encode(prompts)
        elif prompt is not None:
            raise ValueError("give prompt or prompt_embeds, not both")
        elif not torch.is_tensor(prompt_embeds) or prompt_embeds.ndim != 3:
            raise ValueError(f"prompt_embeds must be a (prompts, tokens, width) tensor, got {_shape(prompt_embeds)}")
        count = len(prompt_embeds)
        if not guided:
            negative_embeds = None
        elif negative_embeds is None:
            negative_embeds = self.encode(self._negatives(negative, count))
        elif negative is not None:
            raise ValueError("give negative_prompt or negative_prompt_embeds, not both")
        elif not torch.is_tensor(negative_embeds) or negative_embeds.shape != prompt_embeds.shape:
            raise ValueError(f"negative_prompt_embeds must have prompt_embeds' shape {tuple(prompt_embeds.shape)}, "
                             f"got {_shape(negative_embeds)}")  # fmt: skip

        def repeat(states):
            if states is None:
                return None
            return states.to(self._execution_device, self.dtype).repeat_interleave(per_prompt, dim=0)

        return repeat(prompt_embeds), repeat(negative_embeds)

    @staticmethod
    def _negatives(negative: str | Sequence[str] | None, prompts: int) -> list[str]:
        if negative is None or isinstance(negative, str):
            return [negative or ""] * prompts
        if len(negative) != prompts:
            raise ValueError(f"{len(negative)} negative prompts for {prompts} prompts")
        return list(negative)

    def _initial_latents(self, n: int, latents: torch.Tensor | None, generator) -> torch.Tensor:
        """Scaled initial noise: ``latents`` when given, else drawn on the CPU from ``generator``."""
        size = self.image_size // self.vae_scale_factor
        shape = (n, self.unet.config.in_channels, size, size)
        if latents is None:
            latents = _initial_noise(shape, generator)
        elif not torch.is_tensor(latents) or tuple(latents.shape) != shape:
            raise ValueError(f"latents must be a tensor of shape {shape}, got {_shape(latents)}")
        return (latents.to(self._execution_device) * self.scheduler.init_noise_sigma).to(self.dtype)

    def _check_controls(self, controls: dict, mode: str, n: int) -> dict[str, torch.Tensor]:
        """Validate the given maps; returns ``{name: (n, channels, H, W) tensor}`` on the pipeline's device."""
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
            size = self.image_size
            channels = self.controlnets[name].config.conditioning_channels if mode == "multi" else 1
            array = array[None, None] if array.ndim == 2 else (array[:, None] if array.ndim == 3 else array)
            if (array.ndim != 4 or tuple(array.shape[2:]) != (size, size) or array.shape[0] not in (1, n)
                    or array.shape[1] not in (1, channels)):  # fmt: skip
                full = f"or ({n}, {channels}, {size}, {size})" if channels > 1 else ""
                raise ControlError(f"control {name!r} has shape {tuple(np.shape(values))}; expected ({size}, {size}) "
                                   f"or ({n}, {size}, {size}) {full}".rstrip())  # fmt: skip
            if not torch.isfinite(array).all() or array.min() < -1e-6 or array.max() > 1 + 1e-6:
                raise ControlError(f"control {name!r} must be finite and in [0, 1] (normalised as in training: "
                                   f"registry.normalise); got range [{array.min():.3g}, {array.max():.3g}]")  # fmt: skip
            checked[name] = array.expand(n, channels, size, size).to(self._execution_device, self.dtype)
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
        controlnets = self.controlnets
        nets = MultiControlNetModel([controlnets[name] for name in names])
        return nets(sample, t, states, controlnet_cond=[twice(conditioning[name]) for name in names],
                    conditioning_scale=[float(active[name]) for name in names], return_dict=False)  # fmt: skip

    def _output(self, latents: torch.Tensor, output_type: str):
        """The final latents decoded (by the VAE when there is one) into ``output_type`` images."""
        if output_type == "latent":
            return latents
        if self.vae is not None:
            images = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        else:
            images = latents
        if output_type == "grey":
            return ((images.float().clamp(-1, 1) + 1) / 2).mean(dim=1).cpu().numpy()  # the mean of the channels
        return self.image_processor.postprocess(images, output_type=output_type)

    # -- persistence ------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | Path, **kwargs) -> Path:
        """diffusers' ``save_pretrained`` (safetensors) into a staging folder that then replaces ``save_directory``.

        An interrupted save leaves the previous pipeline (or nothing), never half of one. The folder also gets
        :data:`CODE_MODULE` ``.py`` and ``model_index.json`` names it, so plain diffusers finds this class.
        """
        if kwargs.get("push_to_hub") or kwargs.get("safe_serialization") is False:
            raise ValueError("radgazegen pipelines are saved locally and as safetensors only")
        with atomic_dir(save_directory) as staging:
            self.write_components(staging, **kwargs)
        return Path(save_directory)

    def write_components(self, folder: Path, **kwargs) -> None:
        """Every component, ``model_index.json`` and :data:`CODE_MODULE` into an existing (staging) ``folder``."""
        super().save_pretrained(folder, safe_serialization=True, **kwargs)
        index = read_json(folder / MODEL_INDEX)
        index["_class_name"] = [CODE_MODULE, type(self).__name__]
        (folder / MODEL_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        (folder / f"{CODE_MODULE}.py").write_text(CODE)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        scheduler: str | SchedulerMixin | None = None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> RadGazeGenPipeline:
        """Load a folder written by :meth:`save_pretrained` (local folders only; errors name the file).

        ``scheduler``: a name in :data:`~radgazegen.models.schedulers.SCHEDULERS` (built from the saved scheduler's configuration) or a
        scheduler; ``None`` keeps the saved one. ``dtype`` is the weights' dtype. A folder in the earlier
        ``pipeline.json`` format loads through :func:`radgazegen.models.legacy.load_legacy` with a warning.
        """
        from radgazegen.models.legacy import LEGACY_FILE, load_legacy

        folder = Path(pretrained_model_name_or_path)
        if not (folder / MODEL_INDEX).is_file() and (folder / LEGACY_FILE).is_file():
            warnings.warn(f"{folder}: a pipeline in the earlier {LEGACY_FILE} format; convert it once with "
                          f"`radgazegen export --pipeline {folder} --out NEW_FOLDER`", FutureWarning, stacklevel=2)  # fmt: skip
            pipe = load_legacy(cls, folder, dtype)
        else:
            _check_folder(folder)
            with loading(folder), _quiet_diffusers():
                pipe = super().from_pretrained(
                    folder, dtype=dtype, trust_remote_code=True, local_files_only=True, use_safetensors=True,
                    **({"scheduler": scheduler} if isinstance(scheduler, SchedulerMixin) else {}), **kwargs,
                )  # fmt: skip
        if isinstance(scheduler, str):
            pipe.set_scheduler(scheduler)
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
        from radgazegen.models.controlnet import load_unet

        folder = Path(folder)
        for sub in ("unet", "vae", "scheduler"):
            if not (folder / sub).is_dir():
                raise MissingWeightsError(f"{folder / sub}: missing; a Stable Diffusion folder has {sub}/")
        tokenizer, text_encoder = load_text_encoder(folder)
        with loading(folder / "vae"):
            vae = AutoencoderKL.from_pretrained(folder / "vae", use_safetensors=True, torch_dtype=dtype)
        pipe = cls.from_components(
            unet if unet is not None else load_unet(folder / "unet", dtype),
            load_scheduler(folder / "scheduler", scheduler),
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


def _check_folder(folder: Path) -> None:
    """A saved pipeline's ``model_index.json`` and a folder with files for every component it lists."""
    if not (folder / MODEL_INDEX).is_file():
        raise MissingWeightsError(f"{folder}: missing {MODEL_INDEX} (not a saved RadGazeGenPipeline)")
    index = read_json(folder / MODEL_INDEX, required=("_class_name", "unet", "scheduler"))
    if index["_class_name"] != [CODE_MODULE, RadGazeGenPipeline.__name__]:
        raise DataFormatError(folder / MODEL_INDEX, f"'_class_name' is {index['_class_name']!r}, not a RadGazeGenPipeline")
    code = folder / f"{CODE_MODULE}.py"
    if not code.is_file() or code.read_text() != CODE:  # the only code from_pretrained runs from the folder
        raise DataFormatError(code, "missing or changed; it must be exactly what save_pretrained writes")
    for name, entry in index.items():
        if name.startswith("_") or not (isinstance(entry, list) and len(entry) == 2 and entry[0] in LIBRARIES):
            continue  # a setting, or a component saved as absent
        parts = [name]
        if entry[1] == MultiControlNetModel.__name__:  # diffusers' layout: controlnet/, controlnet_1/, ...
            parts = [name] + [f"{name}_{k}" for k in range(1, len(index.get("controls", [])))]
        for part in (folder / p for p in parts):
            if not part.is_dir() or not any(part.iterdir()):
                raise MissingWeightsError(f"{part}: missing; {MODEL_INDEX} lists the component {name!r} "
                                          f"({len(parts)} folder(s))")  # fmt: skip
            if name not in ("scheduler", "tokenizer") and not any(part.glob("*.safetensors")):
                raise MissingWeightsError(f"{part}: missing its weights (*.safetensors; pickled weights are not loaded)")


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """No "Loading pipeline components" bar while loading (a saved pipeline loads in well under a second at phantom size)."""
    enabled = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            diffusers_logging.enable_progress_bar()


def _shape(value) -> str:
    return str(tuple(value.shape)) if hasattr(value, "shape") else type(value).__name__


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
