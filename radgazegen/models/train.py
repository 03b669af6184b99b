"""Train the generator with accelerate, in the paper's order.

* stage ``base``: fine-tune (or, without ``--pretrained``, train from config) the text-conditioned
  UNet on image + report;
* stage ``controlnet``: ControlNets initialised from that UNet, which stays frozen; in ``multi`` mode
  each control's ControlNet is trained separately (as the paper trains Rad-CN and HVA-CN), in
  ``fused`` mode one ControlNet learns all controls jointly.

Each trained network gets a folder under ``<run_dir>/checkpoints/``::

    base/  or  controlnet/<control>/  or  controlnet/fused/
        checkpoint-<step>/   weights, optimizer, LR schedule, EMA, RNG: safetensors and JSON, no pickle
                             (:mod:`radgazegen.models.checkpoint`); a resume starts at the newest that verifies
        final/               the trained network, save_pretrained (safetensors; EMA weights when enabled)
        log.jsonl            one line per step: step, loss, learning rate, seconds
        validation/          step-<step>.png sample grids (and controls.png)
        snapshots/           step-<step>/ weights as in final/, at every validation (when the preset keeps them;
                             the adherence-vs-steps curves read them)

Checkpoints and ``final/`` are written to a hidden staging folder and renamed into place, so a process killed
at any moment leaves the previous checkpoint intact (what it left is deleted when training starts again).
Runs unchanged under ``accelerate launch`` with several processes: each takes its own slice of every step's
batch, gradients are all-reduced by DDP.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from PIL import Image
from tqdm.auto import tqdm

from radgazegen.controls.extract import extract_controls, load_registry, stacked_controls
from radgazegen.controls.registry import ControlRegistry, ControlSettings, check_names
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.data.reports import strip_locations
from radgazegen.errors import DataFormatError, MissingWeightsError
from radgazegen.io import atomic_dir, atomic_path, remove_leftovers, write_json_atomic, write_text_atomic
from radgazegen.models.assembly import TRAINING_FILE, base_text_source, export_run, noise_scheduler_for
from radgazegen.models.checkpoint import TrainingState, find_checkpoint, load_checkpoint, save_checkpoint
from radgazegen.models.controlnet import (
    CONTROL_MODES,
    FUSED,
    build_unet,
    controlnet_from_unet,
    folder_name,
    load_unet,
    save_controlnet,
)
from radgazegen.models.dataset import GeneratorDataset, StepBatches, collate
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.models.text import PromptCache, load_text_encoder, text_width
from radgazegen.models.tracking import StepLogTracker
from radgazegen.presets import Preset, TrainSettings
from radgazegen.runs import hardware, read_manifest, record, versions

STAGES = ("base", "controlnet")
VALIDATION_IMAGES = 4


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What one trained network's run did."""

    folder: Path
    controls: tuple[str, ...]
    start_step: int
    steps: int
    seconds: float
    last_loss: float


def stage_folder(run_dir: str | Path, stage: str, controls: Sequence[str] = (), mode: str = "multi") -> Path:
    """``checkpoints/base``, ``checkpoints/controlnet/<control>`` (multi) or ``checkpoints/controlnet/fused``."""
    root = Path(run_dir) / "checkpoints"
    if stage == "base":
        return root / "base"
    return root / "controlnet" / (FUSED if mode == FUSED else folder_name(controls[0]))


def train(
    preset: Preset,
    run_dir: str | Path,
    stage: str,
    dataset: ReflacxDataset,
    *,
    mode: str = "multi",
    controls: Sequence[str] | None = None,
    pretrained: str | Path | None = None,
    steps: int | None = None,
    resume: bool = True,
    device: str = "cpu",
    progress: bool = True,
    report_to: Sequence[str] = (),
) -> list[TrainResult]:
    """Train one stage; returns one result per trained network (several ControlNets in ``multi`` mode).

    ``report_to``: accelerate trackers (e.g. ``"tensorboard"``, ``"wandb"``) that get the loss beside ``log.jsonl``.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
    if mode not in CONTROL_MODES:
        raise ValueError(f"unknown control mode {mode!r}; choose one of {CONTROL_MODES}")
    run_dir = Path(run_dir)
    check_trackers(report_to)
    names = check_names(controls if controls is not None else preset.controls)
    state = PartialState(cpu=device == "cpu")
    if stage == "controlnet":
        if state.is_main_process:  # cached and resumable; other processes wait, then read the files
            extract_controls(dataset, names, run_dir, ControlSettings(size=preset.control_size),
                             device=state.device, progress=progress)  # fmt: skip
        state.wait_for_everyone()
    groups = [[]] if stage == "base" else ([names] if mode == FUSED else [[name] for name in names])
    results = [
        _train_network(
            preset, run_dir, stage, mode, group, dataset, pretrained, steps, resume, progress, report_to, device
        )  # fmt: skip
        for group in groups
    ]
    if PartialState().is_main_process:
        export_run(run_dir, preset)
    return results


def _train_network(
    preset: Preset,
    run_dir: Path,
    stage: str,
    mode: str,
    controls: list[str],
    dataset: ReflacxDataset,
    pretrained: str | Path | None,
    steps: int | None,
    resume: bool,
    progress: bool,
    report_to: Sequence[str],
    device_name: str,
) -> TrainResult:
    """Train one network with its own Accelerator (so that its checkpoints hold that network alone)."""
    settings = preset.train
    total = steps if steps is not None else (settings.base_steps if stage == "base" else settings.controlnet_steps)
    folder = stage_folder(run_dir, stage, controls, mode)
    key = folder.relative_to(run_dir / "checkpoints").as_posix()
    done = read_manifest(run_dir).get("training", {}).get(key)
    if resume and (folder / "final").is_dir() and done and done["steps"] == total:
        log = read_log(folder)  # trained already: nothing to do, report the run that did it
        return TrainResult(
            folder, tuple(controls), total, total, done["seconds"], log[-1]["loss"] if log else done["last_loss"]
        )
    if PartialState().is_main_process and folder.is_dir():
        remove_leftovers(folder)  # staging folders of a killed run
    checkpoint = find_checkpoint(folder) if resume else None
    mixed = settings.mixed_precision if device_name.startswith("cuda") else "no"
    trackers = [StepLogTracker(folder / "log.jsonl"), *report_to]
    accelerator = Accelerator(cpu=device_name == "cpu", mixed_precision=mixed, log_with=trackers,
                              project_config=ProjectConfiguration(folder, logging_dir=folder / "tensorboard"),
                              gradient_accumulation_steps=settings.gradient_accumulation)  # fmt: skip
    set_seed(preset.seed + accelerator.process_index)
    device = accelerator.device
    dtype = weight_dtype(accelerator.mixed_precision)
    pretrained = _text_source(run_dir, stage, pretrained)
    tokenizer, text_encoder = load_text_encoder(pretrained)
    text_encoder.to(device, dtype)
    vae = _load_vae(pretrained)
    if vae is not None:
        _cast(vae, device, dtype)
    unet, noise_scheduler = _base_networks(preset, run_dir, stage, pretrained, text_width(text_encoder))
    if stage == "base":
        model = unet.to(device)
    else:
        model = controlnet_from_unet(unet, len(controls), 2 ** (len(vae.config.block_out_channels) - 1) if vae else 1)
        _cast(unet.requires_grad_(False).eval(), device, dtype)  # frozen: in the mixed-precision dtype, after the copy
    if settings.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    optimizer = make_optimizer(
        model.parameters(), settings.base_learning_rate if stage == "base" else settings.controlnet_learning_rate,
        eight_bit=settings.adam_8bit,
    )  # fmt: skip
    schedule = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=settings.warmup_steps)
    ema = EMAModel(model.parameters(), decay=settings.ema_decay) if settings.ema_decay else None
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    if ema is not None:
        ema.to(device)
    state = TrainingState(accelerator.unwrap_model(model), optimizer, schedule, ema, accelerator.scaler)
    start = 0
    if checkpoint is not None:
        start = load_checkpoint(checkpoint, state, process_index=accelerator.process_index, seed=preset.seed)
    elif accelerator.is_main_process and folder.exists():
        shutil.rmtree(folder)  # a fresh run: no stale checkpoints, logs or samples from an earlier one
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _truncate_log(folder / "log.jsonl", start)
    accelerator.init_trackers(_tracker_run_name(stage, controls, mode))
    data = GeneratorDataset(dataset, run_dir, controls, preset.control_size)
    accumulate = settings.gradient_accumulation
    batches = StepBatches(len(data), settings.batch_size, preset.seed, start * accumulate, total * accumulate,
                          accelerator.process_index, accelerator.num_processes)  # fmt: skip
    # its own generator: creating the iterator must not draw from the global RNG that resume restores
    loader = torch.utils.data.DataLoader(data, batch_sampler=batches, collate_fn=collate, generator=torch.Generator())
    prompt_states = PromptCache(tokenizer, text_encoder, _prompt_tokens(tokenizer, preset))
    label = "base" if stage == "base" else f"controlnet {FUSED if mode == FUSED else controls[0]}"
    bar = tqdm(
        total=total, initial=start, desc=label, unit="step", disable=not (progress and accelerator.is_main_process)
    )
    step, loss_value, started = start, float("nan"), time.perf_counter()
    for batch in loader:
        with accelerator.accumulate(model):
            loss = denoising_loss(model, unet, stage, batch["image"].to(device, dtype if vae else torch.float32),
                                  batch["controls"].to(device, dtype) if stage == "controlnet" else None,
                                  lambda reports=batch["prompt"]: prompt_states(training_prompts(reports, preset.train)),
                                  noise_scheduler, vae)  # fmt: skip
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        step += 1
        if ema is not None:
            ema.step(model.parameters())
        loss_value = accelerator.reduce(loss.detach(), reduction="mean").item()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        accelerator.log({"loss": loss_value, "lr": schedule.get_last_lr()[0],
                         "seconds": round(time.perf_counter() - started, 3)}, step=step)  # fmt: skip
        if step % settings.checkpoint_every == 0 or step == total:
            save_checkpoint(accelerator, state, folder, step, settings.checkpoints_total_limit)
        if accelerator.is_main_process and (step % settings.validate_every == 0 or step == total):
            with accelerator.autocast():  # the trained network in float32 beside frozen ones in the mixed dtype
                _validate(accelerator.unwrap_model(model), unet, stage, controls, mode, ema, text_encoder, tokenizer,
                          vae, noise_scheduler, preset, run_dir, dataset, folder / "validation", step)  # fmt: skip
            if settings.snapshots:
                _save_weights(accelerator.unwrap_model(model), ema, stage, controls, snapshot_folder(folder, step),
                              pretrained)  # fmt: skip
    bar.close()
    seconds = time.perf_counter() - started
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _save_weights(accelerator.unwrap_model(model), ema, stage, controls, folder / "final", pretrained)
        record(run_dir, "training", key, {
            "stage": stage, "mode": mode if stage == "controlnet" else None, "controls": controls,
            "steps": total, "resumed_from": start, "seconds": round(seconds, 1), "last_loss": loss_value,
            "batch_size": settings.batch_size, "processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision, "device": str(device),
            "parameters": sum(p.numel() for p in accelerator.unwrap_model(model).parameters()),
            "pretrained": str(pretrained) if pretrained else None, "versions": versions(), "hardware": hardware(),
        })  # fmt: skip
    for tracker in accelerator.trackers:  # not end_training(): it ends the process group the next network needs
        tracker.finish()
    accelerator.free_memory()
    return TrainResult(folder, tuple(controls), start, total, seconds, loss_value)


def _text_source(run_dir: Path, stage: str, pretrained: str | Path | None) -> Path | None:
    """The Stable Diffusion folder the text encoder (and VAE) come from; the ControlNet stage follows the base."""
    if stage == "controlnet":
        return base_text_source(run_dir)
    if pretrained is not None and not Path(pretrained).is_dir():
        raise MissingWeightsError(f"{pretrained}: no such folder (expected a local Stable Diffusion folder)")
    return Path(pretrained) if pretrained is not None else None


def _load_vae(pretrained: Path | None) -> AutoencoderKL | None:
    if pretrained is None:
        return None
    if not (pretrained / "vae").is_dir():
        raise MissingWeightsError(f"{pretrained / 'vae'}: missing; a Stable Diffusion folder has vae/")
    vae = AutoencoderKL.from_pretrained(pretrained / "vae", use_safetensors=True)
    return vae.requires_grad_(False).eval()


def _base_networks(preset: Preset, run_dir: Path, stage: str, pretrained: Path | None, width: int):
    """The UNet to train or to condition, and the training noise scheduler."""
    noise_scheduler = noise_scheduler_for(pretrained)
    if stage == "controlnet":
        return load_unet(run_dir / "checkpoints" / "base" / "final" / "unet"), noise_scheduler
    if pretrained is not None:
        return load_unet(pretrained / "unet"), noise_scheduler
    return build_unet(preset.model, preset.control_size, width), noise_scheduler


def denoising_loss(
    model: torch.nn.Module,
    unet: UNet2DConditionModel,
    stage: str,
    images: torch.Tensor,
    controls: torch.Tensor | None,
    states: torch.Tensor | Callable[[], torch.Tensor],
    noise_scheduler: DDPMScheduler,
    vae: AutoencoderKL | None,
) -> torch.Tensor:
    """The denoising loss of one batch (epsilon, v or x0 prediction, as the scheduler is configured).

    ``images`` ``(b, 1, H, W)`` in [-1, 1] (in the VAE's dtype when it encodes them) and ``controls`` come in the frozen
    networks' dtype (the mixed-precision one, as in diffusers' ControlNet script); the trained ``model`` runs under accelerate's autocast, the frozen UNet
    gets its residuals in its own dtype, and the loss is computed in float32. A callable ``states`` (the prompts'
    token states) is called after the noise and timesteps are drawn, the order of random draws a resume restores.
    """
    dtype = unet.dtype
    if vae is not None:
        with torch.no_grad():
            images = vae.encode(images.expand(-1, 3, -1, -1)).latent_dist.sample() * vae.config.scaling_factor
    noise = torch.randn_like(images)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (images.shape[0],), device=images.device)
    noisy = noise_scheduler.add_noise(images, noise, timesteps)
    states = states() if callable(states) else states
    if stage == "base":
        prediction = model(noisy, timesteps, states).sample
    else:
        down, mid = model(noisy, timesteps, states, controlnet_cond=controls, return_dict=False)
        prediction = unet(noisy.to(dtype), timesteps, states.to(dtype),
                          down_block_additional_residuals=[sample.to(dtype) for sample in down],
                          mid_block_additional_residual=mid.to(dtype)).sample  # fmt: skip
    kind = noise_scheduler.config.prediction_type
    if kind == "v_prediction":
        target = noise_scheduler.get_velocity(images, noise, timesteps)
    else:
        target = images if kind == "sample" else noise
    return torch.nn.functional.mse_loss(prediction.float(), target.float())


def check_trackers(names: Sequence[str]) -> None:
    """Each name an accelerate tracker whose package is installed, else a ``ValueError`` / ``ImportError`` saying so."""
    import accelerate.utils
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise ValueError(f"unknown tracker {name!r}; accelerate's are {sorted(LOGGER_TYPE_TO_CLASS)}")
        if not getattr(accelerate.utils, f"is_{name}_available")():
            raise ImportError(f"the {name!r} tracker needs its package (pip install {name})")


def _cast(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """``module`` moved and cast by torch's ``Module.to`` (diffusers' own ``to`` logs a warning for every dtype)."""
    return torch.nn.Module.to(module, device=device, dtype=dtype)


def weight_dtype(mixed_precision: str) -> torch.dtype:
    """The dtype of the frozen networks under ``mixed_precision`` (``"no"``, ``"fp16"``, ``"bf16"``)."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


def make_optimizer(parameters, learning_rate: float, *, eight_bit: bool = False) -> torch.optim.Optimizer:
    """AdamW (weight decay 1e-2); bitsandbytes' 8-bit AdamW when ``eight_bit`` and it is installed (else a warning)."""
    if eight_bit:
        try:
            import bitsandbytes
        except ImportError:
            warnings.warn("adam_8bit: bitsandbytes is not installed (pip install bitsandbytes); using torch's AdamW, "
                          "whose optimizer state takes 4x the memory", stacklevel=2)  # fmt: skip
        else:
            return bitsandbytes.optim.AdamW8bit(parameters, lr=learning_rate, weight_decay=1e-2)
    return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=1e-2)


def _tracker_run_name(stage: str, controls: Sequence[str], mode: str) -> str:
    """The trackers' run name: ``base``, ``controlnet-<control>`` or ``controlnet-fused``."""
    return "base" if stage == "base" else f"controlnet-{FUSED if mode == FUSED else folder_name(controls[0])}"


def training_prompts(reports: Sequence[str], settings: TrainSettings) -> list[str]:
    """The prompts of one batch: a report is emptied with probability ``prompt_dropout`` (classifier-free
    guidance), else stripped of its location words with probability ``location_dropout`` (so that the
    location has to come from the gaze). Draws from torch's global generator, which resuming restores."""
    keep = (torch.rand(len(reports)) >= settings.prompt_dropout).tolist()
    locate = (torch.rand(len(reports)) >= settings.location_dropout).tolist()
    return [(report if at else strip_locations(report)) if kept else ""
            for report, kept, at in zip(reports, keep, locate, strict=True)]  # fmt: skip


def _prompt_tokens(tokenizer, preset: Preset) -> int:
    """CLIP's fixed 77 tokens for Stable Diffusion; the preset's length for the offline encoder."""
    from transformers import CLIPTokenizer

    return tokenizer.model_max_length if isinstance(tokenizer, CLIPTokenizer) else preset.model.max_prompt_tokens


def snapshot_folder(folder: str | Path, step: int) -> Path:
    """Where a training folder keeps the weights of ``step`` (``snapshots/step-<step>``, when snapshots are on)."""
    return Path(folder) / "snapshots" / f"step-{step:06d}"


def snapshots(folder: str | Path) -> dict[int, Path]:
    """The weight snapshots of a training folder, by step (see :func:`snapshot_folder`)."""
    found = sorted((Path(folder) / "snapshots").glob("step-*"))
    return {int(path.name.split("-")[1]): path for path in found if path.is_dir()}


def _save_weights(model, ema, stage: str, controls: list[str], target: Path, pretrained: Path | None) -> None:
    """The network (EMA weights when enabled) as a ``save_pretrained`` folder, written to staging and renamed.

    ``final/`` and every snapshot share this layout: ``unet/`` + ``training.json`` (base) or a ControlNet folder.
    """
    if ema is not None:
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
    with atomic_dir(target) as staging:
        if stage == "base":
            model.save_pretrained(staging / "unet", safe_serialization=True)
            write_json_atomic(staging / TRAINING_FILE, {"pretrained": str(pretrained) if pretrained else None})
        else:
            save_controlnet(model, staging, controls)
    if ema is not None:
        ema.restore(model.parameters())


def validation_cases(dataset: ReflacxDataset, count: int = VALIDATION_IMAGES) -> list:
    """The first ``count`` cases of the validation split (training cases when there are too few)."""
    cases = list(dataset)
    chosen = [c for c in cases if c.split == "validate"][:count]
    return chosen + [c for c in cases if c not in chosen][: count - len(chosen)]


@torch.no_grad()
def _validate(model, unet, stage, controls, mode, ema, text_encoder, tokenizer, vae, noise_scheduler, preset, run_dir,
              dataset, out: Path, step: int) -> None:  # fmt: skip
    """Sample the validation cases with the current weights (EMA when enabled) into ``step-<step>.png``."""
    if ema is not None:
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
    model.eval()
    registry = load_registry(run_dir) if controls else ControlRegistry(ControlSettings(size=preset.control_size))
    fused = stage == "controlnet" and mode == FUSED
    pipe = RadGazeGenPipeline.from_components(
        model if stage == "base" else unet, noise_scheduler, tokenizer, text_encoder, registry,
        controlnets={controls[0]: model} if stage == "controlnet" and not fused else None,
        fused=model if fused else None, fused_controls=controls if fused else (),
        vae=vae, image_size=preset.control_size, max_prompt_tokens=_prompt_tokens(tokenizer, preset),
    )  # fmt: skip
    pipe.set_scheduler(preset.sampling.scheduler)
    cases = validation_cases(dataset)
    prompts = [case.transcription() for case in cases]
    maps = {}
    if controls:
        maps = stacked_controls(run_dir, [case.id for case in cases], controls, registry)
        if not (out / "controls.png").is_file():
            _save_grid(out / "controls.png", np.concatenate([maps[name] for name in controls]), len(cases))
    generator = torch.Generator().manual_seed(preset.seed)
    images = pipe(prompts, maps, num_inference_steps=preset.sampling.steps, **preset.sampling.guidance(),
                  generator=generator, progress=False).images  # fmt: skip
    _save_grid(out / f"step-{step:06d}.png", images, len(cases))
    model.train()
    if ema is not None:
        ema.restore(model.parameters())


def _save_grid(path: Path, images: np.ndarray, columns: int) -> None:
    """Images in [0, 1] tiled ``columns`` wide into an 8-bit PNG (written atomically)."""
    rows = -(-len(images) // columns)
    size = images.shape[1:]
    grid = np.zeros((rows * size[0], columns * size[1]), np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        grid[r * size[0] : (r + 1) * size[0], c * size[1] : (c + 1) * size[1]] = np.round(np.clip(image, 0, 1) * 255)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")


def validation_panels(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """A training folder's validation images, oldest first: ``("controls", grid)`` when the network takes
    controls, then ``("step <n>", grid)`` per validation (8-bit arrays, as written by training)."""
    found = Path(folder) / "validation"
    panels = [("controls", found / "controls.png")] if (found / "controls.png").is_file() else []
    panels += [(f"step {int(path.stem.removeprefix('step-'))}", path) for path in sorted(found.glob("step-*.png"))]
    return [(label, np.asarray(Image.open(path))) for label, path in panels]


def training_table(run_dir: str | Path) -> pd.DataFrame:
    """One row per network the run trained (from its manifest): steps, seconds (this execution's), seconds per
    step, parameters in millions, device and processes."""
    entries = read_manifest(run_dir).get("training", {})
    return pd.DataFrame(
        [{"network": key, "steps": e["steps"], "seconds": e["seconds"],
          "s / step": e["seconds"] / max(e["steps"] - e["resumed_from"], 1), "parameters (M)": e["parameters"] / 1e6,
          "device": e["device"], "processes": e["processes"]} for key, e in entries.items()],
        columns=["network", "steps", "seconds", "s / step", "parameters (M)", "device", "processes"],
    )  # fmt: skip


def read_log(folder: str | Path) -> list[dict]:
    """The per-step log of a training folder (``log.jsonl``).

    A last line without its newline that does not parse is a write a kill interrupted: it is left out. Any other
    line that is not a JSON object with ``step``, ``loss`` and ``seconds`` is a :class:`DataFormatError` naming it.
    """
    path = Path(folder) / "log.jsonl"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not {"step", "loss", "seconds"} <= set(entry):
                raise ValueError("not an entry with step, loss and seconds")
        except ValueError as err:
            if number == len(lines):  # the last line, with no newline after it: an interrupted append
                break
            raise DataFormatError(path, f"line {number} is not a log entry ({err})") from None
        entries.append(entry)
    return entries


def training_seconds(entries: Sequence[dict]) -> float:
    """Wall time of a training log across resumed runs: each run's ``seconds`` restart at 0, so add each run's last."""
    total = last = 0.0
    for entry in entries:
        if entry["seconds"] < last:
            total += last
        last = entry["seconds"]
    return total + last


def _truncate_log(path: Path, step: int) -> None:
    """Keep log entries up to ``step`` (a resumed run rewrites the steps after its checkpoint; an interrupted
    last line goes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = [entry for entry in read_log(path.parent) if entry["step"] <= step]
    write_text_atomic(path, "".join(json.dumps(entry) + "\n" for entry in kept))
