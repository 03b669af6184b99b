"""Generator speed: sampling images/s in ``multi`` (the paper, reference) vs ``fused`` mode, and training steps/s.

Networks are built from a preset's model settings (speed does not depend on the weights), with the
packaged MiniLM text encoder; both modes sample the same prompts with the same controls, size,
sampler and steps, so the ratio is the cost of one ControlNet per control against one for all.
Training: optimizer steps/s of the base UNet, of one multi-mode ControlNet and of the fused one.
On CUDA the networks run in fp16 (``--dtype``) and peak memory is reported.

    python benchmarks/sampling.py [--preset cpu] [--images 16] [--steps 25] [--train-steps 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from radgazegen.controls.registry import ControlRegistry, ControlSettings
from radgazegen.models.controlnet import build_unet, controlnet_from_unet
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.models.text import load_text_encoder, text_width
from radgazegen.models.assembly import noise_scheduler_for
from radgazegen.presets import PRESETS, get_preset

PROMPT = "There is a large left pleural effusion. The lungs are otherwise clear."


def build(preset, device: str, dtype: torch.dtype) -> RadGazeGenPipeline:
    torch.manual_seed(0)
    tokenizer, text_encoder = load_text_encoder()
    unet = build_unet(preset.model, preset.control_size, text_width(text_encoder))
    controls = list(preset.controls)
    nets = {name: controlnet_from_unet(unet, 1, 1) for name in controls}
    fused = controlnet_from_unet(unet, len(controls), 1)
    pipe = RadGazeGenPipeline.from_components(
        unet, noise_scheduler_for(None), tokenizer, text_encoder, ControlRegistry(ControlSettings(preset.control_size)),
        controlnets=nets, fused=fused, fused_controls=controls, max_prompt_tokens=preset.model.max_prompt_tokens,
    )  # fmt: skip
    pipe.set_scheduler(preset.sampling.scheduler)
    return pipe.to(device, None if dtype == torch.float32 else dtype)


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def sampling_rate(pipe: RadGazeGenPipeline, mode: str, images: int, steps: int, batch: int, device: str) -> dict:
    size = pipe.image_size
    rng = np.random.default_rng(0)
    controls = {name: rng.random((size, size)).astype(np.float32) for name in pipe.controls_of(mode)}
    kwargs = {"mode": mode, "num_inference_steps": steps, "guidance_scale": 2.0, "progress": False}
    pipe([PROMPT] * min(batch, images), controls, **kwargs)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    synchronise(device)
    started = time.perf_counter()
    for start in range(0, images, batch):
        pipe([PROMPT] * min(batch, images - start), controls, **kwargs)
    synchronise(device)
    seconds = time.perf_counter() - started
    found = {"images_per_s": images / seconds, "seconds": seconds}
    if device.startswith("cuda"):
        found["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return found


def training_rate(pipe: RadGazeGenPipeline, network: str, batch: int, steps: int, device: str, dtype) -> float:
    """Optimizer steps/s on random data (the loss and update of ``radgazegen.models.train``)."""
    size, unet = pipe.image_size, pipe.unet
    channels = {"base": 0, "controlnet": 1, "fused": len(pipe.fused_controls)}[network]
    model = unet if network == "base" else (pipe.fused if network == "fused" else next(iter(pipe.controlnets.values())))
    unet.requires_grad_(network == "base")
    model.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    states = pipe.encode([PROMPT] * batch)
    mixed = dtype == torch.float16  # fp16 sampling weights: train fp32 weights under autocast, as accelerate does
    weights_dtype = torch.float32 if mixed else dtype
    if mixed:
        model.to(dtype=weights_dtype)
        unet.to(dtype=weights_dtype)
    states = states.to(weights_dtype)

    def step() -> None:
        x = torch.randn(batch, 1, size, size, device=device, dtype=weights_dtype)
        t = torch.randint(0, 1000, (batch,), device=device)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=mixed):
            if network == "base":
                prediction = unet(x, t, states).sample
            else:
                control = torch.rand(batch, channels, size, size, device=device, dtype=weights_dtype)
                down, mid = model(x, t, states, controlnet_cond=control, return_dict=False)
                prediction = unet(x, t, states, down_block_additional_residuals=down,
                                  mid_block_additional_residual=mid).sample  # fmt: skip
        torch.nn.functional.mse_loss(prediction.float(), x.float()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    synchronise(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronise(device)
    rate = steps / (time.perf_counter() - started)
    for network_module in (model, unet):
        network_module.requires_grad_(False).eval()
        if mixed:
            network_module.to(dtype=dtype)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=sorted(set(PRESETS) - {"paper"}))
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, help="sampling steps (default: the preset's)")
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "float16"), help="default: float16 on CUDA, else float32")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    preset = get_preset(args.preset)
    dtype = getattr(torch, args.dtype or ("float16" if args.device.startswith("cuda") else "float32"))
    steps = args.steps or preset.sampling.steps
    pipe = build(preset, args.device, dtype)
    print(f"preset {preset.name}: {preset.control_size} px, controls {list(preset.controls)}, {steps} "
          f"{type(pipe.scheduler).__name__} steps, batch {args.batch}, {args.device} {dtype}")  # fmt: skip
    results = {"preset": preset.name, "size": preset.control_size, "steps": steps, "device": args.device,
               "dtype": str(dtype), "controls": list(preset.controls), "sampling": {}, "training": {}}  # fmt: skip
    for mode in ("multi", "fused"):
        results["sampling"][mode] = sampling_rate(pipe, mode, args.images, steps, args.batch, args.device)
    multi, fused = results["sampling"]["multi"], results["sampling"]["fused"]
    print(f"{'sampling':<22}{'multi (reference)':>20}{'fused':>14}{'fused / multi':>16}")
    print(f"{'images / s':<22}{multi['images_per_s']:>20.3f}{fused['images_per_s']:>14.3f}"
          f"{fused['images_per_s'] / multi['images_per_s']:>15.2f}x")  # fmt: skip
    if "peak_memory_gib" in multi:
        print(f"{'peak memory (GiB)':<22}{multi['peak_memory_gib']:>20.2f}{fused['peak_memory_gib']:>14.2f}")
    for network in ("base", "controlnet", "fused"):
        results["training"][network] = training_rate(pipe, network, preset.train.batch_size, args.train_steps,
                                                      args.device, dtype)  # fmt: skip
    rates = results["training"]
    print(f"training steps / s (batch {preset.train.batch_size}): base UNet {rates['base']:.3f}, one multi-mode "
          f"ControlNet {rates['controlnet']:.3f}, fused ControlNet {rates['fused']:.3f}; all {len(preset.controls)} "
          f"multi ControlNets take {len(preset.controls) * rates['fused'] / rates['controlnet']:.2f}x the fused "
          "one's time per step")  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
