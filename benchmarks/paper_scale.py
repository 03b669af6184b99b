"""The paper preset at full size: Stable Diffusion 1.5's architecture, one ControlNet trained, five sampled.

The UNet, VAE and CLIP text encoder are built from Stable Diffusion 1.5's published configurations (random
weights: speed and memory do not depend on them; nothing is downloaded). Two measurements, each in a process of
its own so that peak memory is its alone:

* **training**: one ControlNet (``controlnet_from_unet``, 3 conditioning channels) trained with the package's own
  step (:func:`~radgazegen.models.train.denoising_loss`, :func:`~radgazegen.models.train.make_optimizer`, accelerate
  mixed precision, gradient checkpointing, SDPA attention), once with the frozen UNet / VAE / text encoder in
  float32 (before) and once in the mixed-precision dtype (after; fp16 on a GPU, bf16 on a CPU);
* **sampling**: five ControlNets with UniPC, classifier-free guidance 7.5, through ``RadGazeGenPipeline`` and,
  side by side in the same process on the same weights, diffusers' ``StableDiffusionControlNetPipeline``.

On a GPU it runs at full size (512 px, batch 4, 50 sampling steps); on a CPU one training step and two sampling
steps at a reduced size prove the path.

    python benchmarks/paper_scale.py [--device auto] [--size 512] [--batch 4] [--train-steps 6] [--sample-steps 50]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionControlNetPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from radgazegen.controls.registry import ControlRegistry, ControlSettings
from radgazegen.models.controlnet import controlnet_from_unet
from radgazegen.models.pipeline import PAPER_NEGATIVE_PROMPT, PAPER_SCALES, RadGazeGenPipeline
from radgazegen.models.train import denoising_loss, make_optimizer, weight_dtype

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_sd import _clip_tokenizer  # noqa: E402  (an offline byte-level CLIP tokenizer; the ids are what matter)

RESULTS = Path(__file__).parents[1] / "radgazegen" / "benchmark_results"
PROMPT = "Moderate right pleural effusion with adjacent atelectasis. Heart size is normal."
CONTROLS = ("canny", "sobel", "log", "lungs", "gaze")
# Stable Diffusion 1.5's configurations (unet/, vae/, text_encoder/, scheduler/ config.json of the release)
UNET = {"sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
        "block_out_channels": (320, 640, 1280, 1280), "cross_attention_dim": 768, "attention_head_dim": 8,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3}  # fmt: skip
VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
       "block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
       "up_block_types": ("UpDecoderBlock2D",) * 4}  # fmt: skip
CLIP = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
        "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu", "projection_dim": 768}
SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False}  # fmt: skip


def networks(device: str, dtype: torch.dtype):
    """Stable Diffusion 1.5's UNet, VAE and text encoder (random weights), frozen, in ``dtype`` on ``device``."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**UNET)
    vae = AutoencoderKL(**VAE)
    tokenizer = _clip_tokenizer()
    tokenizer.model_max_length = 77
    text = CLIPTextModel(CLIPTextConfig(**CLIP, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.pad_token_id))  # fmt: skip
    for module in (vae, text):
        module.requires_grad_(False).eval().to(device, dtype)
    return unet, vae, tokenizer, text


def peak_memory(device: str) -> float:
    """Peak GiB: allocated on the GPU, else the process's peak resident set."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_part(device: str, frozen: str, size: int, batch: int, steps: int) -> dict:
    """Train one ControlNet ``steps`` steps; ``frozen`` is ``"float32"`` (before) or ``"mixed"`` (after)."""
    mixed = "fp16" if device.startswith("cuda") else "bf16"
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=mixed)
    dtype = weight_dtype(mixed) if frozen == "mixed" else torch.float32
    unet, vae, tokenizer, text = networks(device, dtype)
    net = controlnet_from_unet(unet, 3, downscale=8)
    unet.requires_grad_(False).eval().to(device, dtype)
    net.enable_gradient_checkpointing()
    net.train()
    optimizer = make_optimizer(net.parameters(), 1e-5, eight_bit=device.startswith("cuda"))
    net, optimizer = accelerator.prepare(net, optimizer)
    ids = tokenizer([PROMPT] * batch, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        states = text(ids.input_ids.to(device))[0]
    images = (torch.rand(batch, 1, size, size, device=device) * 2 - 1).to(dtype)
    controls = torch.rand(batch, 3, size, size, device=device).to(dtype)
    scheduler = DDPMScheduler.from_config(SCHEDULER)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    timings = []
    for _ in range(steps):
        synchronise(device)
        started = time.perf_counter()
        loss = denoising_loss(net, unet, "controlnet", images, controls, states, scheduler, vae)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronise(device)
        timings.append(time.perf_counter() - started)
    attention = sorted({type(p).__name__ for p in unet.attn_processors.values()})
    return {"frozen_dtype": str(dtype).removeprefix("torch."), "mixed_precision": mixed, "size": size, "batch": batch,
            "steps": steps, "seconds_per_step": float(np.median(timings[1:] or timings)),
            "steps_per_second": 1 / float(np.median(timings[1:] or timings)), "loss": float(loss),
            "peak_gib": peak_memory(device), "attention": attention,
            "optimizer": type(optimizer.optimizer).__name__,
            "controlnet_parameters": sum(p.numel() for p in net.parameters())}  # fmt: skip


def sample_part(device: str, size: int, images: int, steps: int) -> dict:
    """Five-ControlNet sampling, ours and diffusers', on the same weights in one process."""
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    unet, vae, tokenizer, text = networks(device, dtype)
    nets = {}
    for k, name in enumerate(CONTROLS):
        torch.manual_seed(k)
        nets[name] = controlnet_from_unet(unet, 3, downscale=8)
        for parameter in [*nets[name].controlnet_down_blocks.parameters(), *nets[name].controlnet_mid_block.parameters()]:
            torch.nn.init.normal_(parameter, std=0.01)  # zero convolutions would skip no work, only hide a mismatch
    unet.eval()
    ours = RadGazeGenPipeline.from_components(unet, DDPMScheduler.from_config(SCHEDULER), tokenizer, text, ControlRegistry(ControlSettings(size)),
                                              controlnets=nets, vae=vae, image_size=size, max_prompt_tokens=77)  # fmt: skip
    ours.set_scheduler("unipc")
    ours.to(device, dtype)
    theirs = StableDiffusionControlNetPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                               controlnet=list(ours.controlnets.values()), scheduler=ours.scheduler,
                                               safety_checker=None, feature_extractor=None,
                                               requires_safety_checker=False)  # fmt: skip
    theirs.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    maps = {name: rng.random((3, size, size)).astype(np.float32) for name in CONTROLS}
    scales = PAPER_SCALES["reflacx"]
    common = {"num_inference_steps": steps, "guidance_scale": 7.5, "negative_prompt": PAPER_NEGATIVE_PROMPT,
              "output_type": "np"}  # fmt: skip

    def run_ours():
        return ours(PROMPT, {n: m[None] for n, m in maps.items()}, control_scales=scales,
                    generator=torch.Generator().manual_seed(3407), progress=False, **common).images  # fmt: skip

    def run_theirs():
        return theirs(PROMPT, image=[torch.from_numpy(maps[n])[None] for n in CONTROLS],
                      controlnet_conditioning_scale=[scales[n] for n in CONTROLS],
                      generator=torch.Generator().manual_seed(3407), height=size, width=size, **common).images  # fmt: skip

    found = {}
    outputs = {}
    for label, run in (("radgazegen", run_ours), ("diffusers", run_theirs), ("radgazegen_again", run_ours)):
        run()  # warm-up
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        synchronise(device)
        started = time.perf_counter()
        for _ in range(images):
            outputs[label] = run()
        synchronise(device)
        seconds = time.perf_counter() - started
        found[label] = {"seconds_per_image": seconds / images, "images_per_second": images / seconds,
                        "peak_gib": peak_memory(device)}  # fmt: skip
    ratio = found["diffusers"]["seconds_per_image"] / np.mean(
        [found[k]["seconds_per_image"] for k in ("radgazegen", "radgazegen_again")])
    return {"size": size, "steps": steps, "images": images, "dtype": str(dtype).removeprefix("torch."), **found,
            "speed_ratio_ours_over_diffusers": float(ratio),
            "max_abs_difference": float(np.abs(outputs["radgazegen"] - outputs["diffusers"]).max())}  # fmt: skip


def child(part: str, **options) -> dict:
    """Run one part in a fresh process (its own peak memory); returns its JSON."""
    command = [sys.executable, __file__, "--part", part] + [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, help="image size (default 512 on a GPU, 128 on a CPU)")
    parser.add_argument("--batch", type=int, help="training batch (default 4 on a GPU, 1 on a CPU)")
    parser.add_argument("--train-steps", type=int, help="timed training steps (default 6 on a GPU, 1 on a CPU)")
    parser.add_argument("--sample-steps", type=int, help="UniPC steps (default 50 on a GPU, 2 on a CPU)")
    parser.add_argument("--images", type=int, help="images timed per pipeline (default 4 on a GPU, 3 on a CPU)")
    parser.add_argument("--part", choices=("train-float32", "train-mixed", "sample"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    gpu = device.startswith("cuda")
    size = args.size or (512 if gpu else 128)
    batch = args.batch or (4 if gpu else 1)
    train_steps = args.train_steps or (6 if gpu else 1)
    sample_steps = args.sample_steps or (50 if gpu else 2)
    images = args.images or (4 if gpu else 3)
    if args.part:
        if args.part == "sample":
            found = sample_part(device, size, images, sample_steps)
        else:
            found = train_part(device, args.part.removeprefix("train-"), size, batch, train_steps)
        print(json.dumps(found))
        return
    options = {"device": device, "size": size, "batch": batch, "train_steps": train_steps,
               "sample_steps": sample_steps, "images": images}  # fmt: skip
    before = child("train-float32", **options)
    after = child("train-mixed", **options)
    sampling = child("sample", **options)
    machine = torch.cuda.get_device_name() if gpu else "cpu"
    print(f"paper-scale networks on {machine}: SD 1.5 UNet + VAE + CLIP text encoder, one ControlNet of "
          f"{after['controlnet_parameters'] / 1e6:.0f}M parameters")
    print(f"training at {size} px, batch {batch}, {after['mixed_precision']}, {after['optimizer']}, "
          f"attention {', '.join(after['attention'])}")
    for label, found in (("frozen float32 (before)", before), (f"frozen {after['frozen_dtype']} (after)", after)):
        print(f"  {label:28s} {found['steps_per_second']:.3f} steps/s   peak {found['peak_gib']:.2f} GiB")
    print(f"  peak memory after / before: {after['peak_gib'] / before['peak_gib']:.2f}")
    print(f"sampling at {size} px, {sample_steps} UniPC steps, five ControlNets, guidance 7.5, {sampling['dtype']}")
    for label in ("radgazegen", "diffusers", "radgazegen_again"):
        found = sampling[label]
        print(f"  {label:28s} {found['images_per_second']:.4f} images/s   peak {found['peak_gib']:.2f} GiB")
    print(f"  speed ours / diffusers: {sampling['speed_ratio_ours_over_diffusers']:.3f} "
          f"(largest pixel difference {sampling['max_abs_difference']:.2e})")
    RESULTS.mkdir(exist_ok=True)
    name = "paper_scale_" + ("".join(c for c in machine.lower().split()[-1] if c.isalnum()) if gpu else "cpu")
    (RESULTS / f"{name}.json").write_text(json.dumps({"device": machine, "options": options, "train_before": before,
                                                      "train_after": after, "sampling": sampling}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
