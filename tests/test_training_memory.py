"""Training at low memory, as diffusers' ControlNet script does: frozen networks in the mixed-precision dtype, the
trained one in float32, gradient checkpointing, optional 8-bit AdamW; logging through accelerate's trackers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from diffusers import DDPMScheduler

from radgazegen.models.controlnet import build_unet, controlnet_from_unet
from radgazegen.models.tracking import StepLogTracker
from radgazegen.models.train import check_trackers, denoising_loss, make_optimizer, weight_dtype
from radgazegen.presets import get_preset

SMOKE = get_preset("smoke")


def test_a_controlnet_step_with_a_bfloat16_frozen_unet_trains_the_float32_controlnet() -> None:
    dtype = weight_dtype("bf16")
    assert dtype == torch.bfloat16 and weight_dtype("fp16") == torch.float16 and weight_dtype("no") == torch.float32
    torch.manual_seed(0)
    unet = build_unet(SMOKE.model, 32, cross_attention_dim=16)
    net = controlnet_from_unet(unet, 2, downscale=1)
    unet.requires_grad_(False).eval().to(dtype=dtype)
    net.enable_gradient_checkpointing()
    net.train()
    optimizer = make_optimizer(net.parameters(), 1e-4)
    images = torch.rand(2, 1, 32, 32).to(dtype) * 2 - 1
    controls = torch.rand(2, 2, 32, 32).to(dtype)
    states = torch.randn(2, 8, 16).to(dtype)
    before = [p.detach().clone() for p in net.parameters()]
    with torch.autocast("cpu", dtype=dtype):  # what accelerate's mixed precision wraps the trained network in
        loss = denoising_loss(net, unet, "controlnet", images, controls, states, DDPMScheduler(), None)
    loss.backward()
    optimizer.step()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in net.parameters())  # the trained weights stay float32
    assert all(p.dtype == torch.bfloat16 for p in unet.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_eight_bit_adam_falls_back_with_a_warning_when_bitsandbytes_is_missing() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        with pytest.warns(UserWarning, match="bitsandbytes is not installed"):
            optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(2))], 1e-3, eight_bit=True)
        assert isinstance(optimizer, torch.optim.AdamW)
    else:
        optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(2))], 1e-3, eight_bit=True)
        assert type(optimizer).__name__ == "AdamW8bit"


def test_the_step_log_is_an_accelerate_tracker(tmp_path: Path) -> None:
    accelerator = Accelerator(cpu=True, log_with=[StepLogTracker(tmp_path / "log.jsonl")],
                              project_config=ProjectConfiguration(tmp_path))  # fmt: skip
    accelerator.init_trackers("base")
    accelerator.log({"loss": 0.5, "lr": 1e-4, "seconds": 0.1}, step=1)
    accelerator.log({"loss": 0.25, "lr": 1e-4, "seconds": 0.2}, step=2)
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines == [{"step": 1, "loss": 0.5, "lr": 1e-4, "seconds": 0.1},
                     {"step": 2, "loss": 0.25, "lr": 1e-4, "seconds": 0.2}]  # fmt: skip


def test_unknown_or_uninstalled_trackers_are_named() -> None:
    with pytest.raises(ValueError, match="unknown tracker 'tensorbored'"):
        check_trackers(["tensorbored"])
    import accelerate.utils

    missing = [name for name in ("tensorboard", "wandb", "mlflow") if not getattr(accelerate.utils, f"is_{name}_available")()]
    if missing:
        with pytest.raises(ImportError, match=f"the {missing[0]!r} tracker needs its package"):
            check_trackers(missing[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_trackers([])
