"""The authors' release layout: tiny ControlNets with 3 conditioning channels, loaded from local folders, give the
same images through our pipeline as through diffusers' StableDiffusionControlNetPipeline with the same list."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import StableDiffusionControlNetPipeline, UniPCMultistepScheduler

from radgazegen.controls.registry import ControlInputs
from radgazegen.data.phantom import ensure_phantom
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.errors import MissingWeightsError
from radgazegen.models import authors
from radgazegen.models.controlnet import controlnet_from_unet, load_unet

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import VAE_FACTOR, save_tiny_stable_diffusion  # noqa: E402

SIZE = 16  # the tiny Stable Diffusion's images


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder in the authors' layout: a tiny fine-tuned SD and five 3-channel ControlNets, safetensors."""
    root = tmp_path_factory.mktemp("release")
    base = save_tiny_stable_diffusion(root / authors.RELEASE_FOLDERS["base"])
    unet = load_unet(base / "unet")
    for k, name in enumerate(authors.CONTROLS):
        torch.manual_seed(10 + k)
        net = controlnet_from_unet(unet, 3, downscale=VAE_FACTOR)
        for parameter in [*net.controlnet_down_blocks.parameters(), *net.controlnet_mid_block.parameters()]:
            torch.nn.init.normal_(parameter, std=0.05)  # untrained zero convolutions would do nothing
        net.save_pretrained(root / authors.RELEASE_FOLDERS[name], safe_serialization=True)
    return root


def _control_pngs(seed: int = 0) -> list[PIL.Image.Image]:
    """Five grey control images at another size, as RGB PNGs are read (the scripts resize them)."""
    rng = np.random.default_rng(seed)
    return [PIL.Image.fromarray((rng.random((24, 20)) * 255).astype(np.uint8)).convert("RGB") for _ in authors.CONTROLS]


def test_the_release_gives_the_images_diffusers_gives(release: Path) -> None:
    pipe = authors.load_release(release)
    assert pipe.controls_of("multi") == list(authors.CONTROLS)
    assert all(net.config.conditioning_channels == 3 for net in pipe.controlnets.values())
    assert isinstance(pipe.scheduler, UniPCMultistepScheduler)
    pngs = _control_pngs()
    prompt = "Small right pleural effusion."
    call = authors.release_call("reflacx") | {"num_inference_steps": 4}
    scales = call.pop("control_scales") | {"gaze": 0.5}  # the released 0.001 would hide a wrong gaze channel
    given = {name: authors.control_image(png, SIZE)[None] for name, png in zip(authors.CONTROLS, pngs, strict=True)}
    ours = pipe(prompt, given, control_scales=scales, generator=torch.Generator().manual_seed(authors.SEED), output_type="np",
                progress=False, **call).images  # fmt: skip
    reference = StableDiffusionControlNetPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
        controlnet=list(pipe.controlnets.values()), scheduler=pipe.scheduler, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    reference.set_progress_bar_config(disable=True)
    resized = [PIL.Image.fromarray(cv2.resize(np.array(png), (SIZE, SIZE))) for png in pngs]  # their preprocessing
    theirs = reference(prompt, image=resized, controlnet_conditioning_scale=[scales[n] for n in authors.CONTROLS],
                       generator=torch.manual_seed(authors.SEED), output_type="np", **call).images  # fmt: skip
    assert ours.shape == theirs.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    without_gaze = pipe(prompt, given, control_scales=scales | {"gaze": 0.0}, generator=torch.Generator().manual_seed(authors.SEED),
                        output_type="np", progress=False, **call).images  # fmt: skip
    assert np.abs(without_gaze - ours).max() > 1e-4  # the gaze ControlNet acts


def test_release_controls_are_three_channel_images_of_a_reading(tmp_path: Path) -> None:
    dataset = ReflacxDataset(ensure_phantom(tmp_path / "phantom", n=4, seed=3, size=(96, 80)))
    case = next(iter(dataset))
    from radgazegen.controls.extract import case_inputs

    inputs = case_inputs(case, authors.CONTROLS)
    controls = authors.release_controls(inputs, size=32)
    assert list(controls) == list(authors.CONTROLS)
    for name, image in controls.items():
        assert image.shape == (3, 32, 32) and image.dtype == np.float32, name
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0, name
        np.testing.assert_array_equal(image[0], image[2])  # grey, repeated over RGB
    assert set(np.unique(controls["canny"])) <= {0.0, 1.0}  # OpenCV's binary edges
    with pytest.raises(ValueError, match="8-bit grey"):
        authors.control_image(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="needs a lung mask"):
        authors.release_controls(ControlInputs(image=inputs.image, fixations=inputs.fixations), size=32)


def test_a_missing_or_pickled_release_part_is_named(release: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(release, tmp_path / "copy"))
    shutil.rmtree(copy / authors.RELEASE_FOLDERS["sobel"])
    with pytest.raises(MissingWeightsError, match=r"controlnet_egc2_sobel"):
        authors.load_release(copy)
    gl = copy / authors.RELEASE_FOLDERS["log"]
    (gl / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match=r"controlnet_egc2_gl: no \*\.safetensors"):
        authors.load_release(copy, sobel=release / authors.RELEASE_FOLDERS["sobel"])
    with pytest.raises(ValueError, match="unknown release part"):
        authors.load_release(copy, hva=gl)


def test_cli_samples_a_split_with_the_release(release: Path, tmp_path: Path) -> None:
    from radgazegen.cli import main
    from radgazegen.data.images import load_image

    out = tmp_path / "samples"
    assert main(["sample", "--preset", "smoke", "--run-dir", str(tmp_path / "run"), "--release", str(release),
                 "--out", str(out)]) == 0  # fmt: skip
    written = sorted(out.glob("*.png"))
    assert written and load_image(written[0], require_contrast=False)[0].shape == (SIZE, SIZE)
    assert main(["sample", "--preset", "smoke", "--run-dir", str(tmp_path / "run"), "--release",
                 str(tmp_path / "nowhere")]) == 1  # fmt: skip


@pytest.mark.skipif(not torch.cuda.is_available(), reason="model CPU offload moves networks to a GPU")
def test_model_cpu_offload_gives_the_images_of_the_pipeline_on_the_gpu(release: Path) -> None:
    given = {name: authors.control_image(png, SIZE)[None] for name, png in zip(authors.CONTROLS, _control_pngs(),
                                                                                strict=True)}  # fmt: skip
    kwargs = {"num_inference_steps": 3, "output_type": "np", "progress": False}
    on_gpu = authors.load_release(release).to("cuda")
    expected = on_gpu("Normal chest.", given, generator=torch.Generator().manual_seed(0), **kwargs).images
    offloaded = authors.load_release(release)
    offloaded.enable_model_cpu_offload()
    images = offloaded("Normal chest.", given, generator=torch.Generator().manual_seed(0), **kwargs).images
    np.testing.assert_allclose(images, expected, atol=1e-4)
    assert offloaded.unet.device.type == "cpu"  # moved back after the call
