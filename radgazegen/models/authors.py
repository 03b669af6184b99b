"""The authors' released weights, loaded from local folders, and their scripts' control preprocessing.

Their inference scripts (``generate_images/*.py`` in lordmoinak1/radgazegen) load a Stable Diffusion 1.5
fine-tuned on MIMIC-CXR and five diffusers ControlNets, each with 3-channel conditioning, in this order:
Canny, Sobel, "gl" (Laplacian of Gaussian), segmentation (lungs) and the HVA gaze ControlNet. Each control
image is a PNG read as RGB (``diffusers.utils.load_image``), resized to 512 x 512 with OpenCV
(``cv2.resize``, bilinear) and given to ``StableDiffusionControlNetPipeline`` with UniPC, 50 steps, the
default guidance scale 7.5, ``torch.manual_seed(3407)`` for every image, the negative prompt
:data:`~radgazegen.models.pipeline.PAPER_NEGATIVE_PROMPT` and scales
:data:`~radgazegen.models.pipeline.PAPER_SCALES`. The weights are in a Google Drive folder their README
names; nothing here downloads: every path is a local folder.

Their folder names (from the scripts) are :data:`RELEASE_FOLDERS`; :func:`load_release` takes a folder
holding them, or any of them given one by one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import torch
from diffusers import ControlNetModel

from radgazegen.controls.registry import ControlInputs, ControlRegistry, ControlSettings, raw_controls
from radgazegen.data.images import grey_levels8
from radgazegen.errors import MissingWeightsError, loading
from radgazegen.models.pipeline import PAPER_NEGATIVE_PROMPT, PAPER_SCALES, RadGazeGenPipeline

CONTROLS = ("canny", "sobel", "log", "lungs", "gaze")
"""Our names of their five ControlNets, in the order their scripts combine them."""
RELEASE_FOLDERS = {
    "base": "stable_diffusion_v1_5_mimic_15k",
    "canny": "controlnet_egc2_canny",
    "sobel": "controlnet_egc2_sobel",
    "log": "controlnet_egc2_gl",
    "lungs": "controlnet_egc2_segmentation",
    "gaze": "radgazegen",
}
SIZE = 512
SEED = 3407
STEPS = 50
GUIDANCE_SCALE = 7.5  # StableDiffusionControlNetPipeline's default; their scripts do not set it
CANNY_THRESHOLDS = (50, 100)


def release_paths(root: str | Path | None = None, **paths: str | Path) -> dict[str, Path]:
    """``{"base": ..., control: ...}``: the folders of ``root`` named as in :data:`RELEASE_FOLDERS`, replaced by any
    given one by one (``base=``, ``canny=``, ...); an error names every folder that is missing."""
    unknown = sorted(set(paths) - set(RELEASE_FOLDERS))
    if unknown:
        raise ValueError(f"unknown release part(s) {unknown}; the parts are {list(RELEASE_FOLDERS)}")
    if root is None and set(paths) != set(RELEASE_FOLDERS):
        raise ValueError(f"give the release folder, or every part: {list(RELEASE_FOLDERS)}")
    found = {part: Path(paths[part]) if part in paths else Path(root) / name for part, name in RELEASE_FOLDERS.items()}
    missing = [str(path) for path in found.values() if not path.is_dir()]
    if missing:
        raise MissingWeightsError(f"missing release folder(s): {', '.join(missing)} (the authors' layout: "
                                  f"{', '.join(f'{v}/' for v in RELEASE_FOLDERS.values())})")  # fmt: skip
    return found


def load_release(
    root: str | Path | None = None, *, dtype: torch.dtype | None = None, **paths: str | Path
) -> RadGazeGenPipeline:
    """The authors' fine-tuned Stable Diffusion and five ControlNets as one pipeline (multi mode, UniPC)."""
    found = release_paths(root, **paths)
    controlnets = {}
    for name in CONTROLS:
        folder = found[name]
        if not any(folder.glob("*.safetensors")):
            raise MissingWeightsError(f"{folder}: no *.safetensors weights (pickled .bin weights are not loaded; "
                                      "convert them once with diffusers: from_pretrained, then save_pretrained)")  # fmt: skip
        with loading(folder):
            controlnets[name] = ControlNetModel.from_pretrained(folder, use_safetensors=True, torch_dtype=dtype).eval()
    return RadGazeGenPipeline.from_stable_diffusion(
        found["base"], ControlRegistry(ControlSettings(size=SIZE)), controlnets=controlnets, scheduler="unipc",
        dtype=dtype,
    )  # fmt: skip


def control_image(image: PIL.Image.Image | np.ndarray | str | Path, size: int = SIZE) -> np.ndarray:
    """One control image as their scripts feed it: read as RGB, ``cv2.resize`` to ``size`` x ``size``, then
    diffusers' control processor (``/ 255``); returns ``(3, size, size)`` float32 in [0, 1].

    A 2-D array is an 8-bit grey image (repeated over the three channels, as a grey PNG read as RGB is).
    """
    if isinstance(image, str | Path):
        with PIL.Image.open(image) as opened:
            image = opened.convert("RGB")
    array = np.asarray(image.convert("RGB") if isinstance(image, PIL.Image.Image) else image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"a control image is 8-bit grey (H, W) or RGB (H, W, 3), got {array.dtype} {array.shape}")
    resized = cv2.resize(array, (size, size))
    return (resized.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()


def release_controls(inputs: ControlInputs, size: int = SIZE) -> dict[str, np.ndarray]:
    """The five control images of one radiograph (and its lungs and gaze), each ``(3, size, size)`` in [0, 1].

    Canny is OpenCV's with their thresholds :data:`CANNY_THRESHOLDS` on the 8-bit radiograph; the scripts that
    made their other control PNGs are not released, so Sobel magnitude, LoG, lung mask and gaze heatmap are this
    project's (:func:`~radgazegen.controls.registry.raw_controls` at ``size``), each min-max scaled to an 8-bit
    image as a PNG holds it. Every image then goes through :func:`control_image`.
    """
    grey = grey_levels8(inputs.image)
    found = {"canny": cv2.Canny(cv2.resize(grey, (size, size)), *CANNY_THRESHOLDS)}
    maps = raw_controls(["sobel", "log", "lungs", "gaze"], inputs, ControlSettings(size=size))
    for name, values in maps.items():
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        found[name] = np.round(scaled * 255).astype(np.uint8)
    return {name: control_image(found[name], size) for name in CONTROLS}


def release_call(dataset: str = "reflacx") -> dict:
    """Their scripts' sampling arguments for ``dataset`` (``"reflacx"``, or ``"chexpert"`` for CheXpert and the long
    tail): scales, negative prompt, steps and guidance scale (the generator, seeded :data:`SEED`, is per image)."""
    if dataset not in PAPER_SCALES:
        raise ValueError(f"unknown data set {dataset!r} for the released scales; choose one of {sorted(PAPER_SCALES)}")
    return {"control_scales": dict(PAPER_SCALES[dataset]), "negative_prompt": PAPER_NEGATIVE_PROMPT,
            "num_inference_steps": STEPS, "guidance_scale": GUIDANCE_SCALE}  # fmt: skip

