"""Named controls -> float32 maps in [0, 1] at the control resolution, the same at training and sampling.

Raw maps come from the image resized to ``size x size`` by area means.

=================== ================================================================= =====================
name                raw map                                                           normalisation
=================== ================================================================= =====================
``canny``           :func:`~radgazegen.controls.edges.canny` edges                    none (0 / 1)
``sobel``           :func:`~radgazegen.controls.edges.sobel` gradient magnitude       robust percentiles
``log``             :func:`~radgazegen.controls.edges.laplacian_of_gaussian`          robust percentiles
``lungs``           lung mask (:func:`~radgazegen.controls.lungs.lung_mask`), area    none (0 / 1)
                    resampled, >= 0.5
``gaze``            REFLACX fixation heatmap of the whole reading (the paper's)       divided by its max
``gaze_findings``   the gaze while the sentences naming the reading's findings were   divided by its max
                    dictated (:func:`~radgazegen.controls.gaze.finding_heatmaps`,     (all zero: no finding)
                    summed over findings)
``texture:<name>``  pyradiomics-exact voxel map of feature ``<name>``                 robust percentiles
                    (:func:`~radgazegen.controls.texture.texture_maps`)
=================== ================================================================= =====================

Robust percentile scaling maps the ``low``-th and ``high``-th percentiles (default 1 and 99) of the raw
values over the training split to 0 and 1 and clips: :math:`x' = \\mathrm{clip}((x - q_{lo}) / (q_{hi}
- q_{lo}), 0, 1)`. The fitted :math:`(q_{lo}, q_{hi})` are stored with the extracted controls and in
the run manifest, and :class:`ControlRegistry` applies them to any new image (e.g. at sampling time).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from radgazegen.controls import edges
from radgazegen.controls.gaze import finding_heatmaps, fixation_heatmap
from radgazegen.controls.texture import texture_maps
from radgazegen.controls.texture_names import expand_features
from radgazegen.data.resample import area_resample

FILTERS = ("canny", "sobel", "log")
"""The paper's Rad-CN filter controls (with ``lungs``)."""
GAZE_CONTROLS = ("gaze", "gaze_findings")
"""HVA-CN inputs: the whole reading's heatmap (the paper's) or the gaze while findings were named (ours)."""
BASE_CONTROLS = (*FILTERS, "lungs", *GAZE_CONTROLS)
TEXTURE_PREFIX = "texture:"
DEFAULT_TEXTURES = ("texture:glcm_Contrast", "texture:glcm_JointEntropy")
DEFAULT_CONTROLS = (*BASE_CONTROLS, *DEFAULT_TEXTURES)
SCALED = ("sobel", "log")
"""Controls (with every ``texture:*``) normalised by robust percentile scaling fitted on the training split."""


@dataclass(frozen=True)
class ControlSettings:
    """Parameters of every control; a control's cache key depends only on the ones it uses."""

    size: int = 64
    canny_sigma: float = edges.CANNY_SIGMA
    canny_low: float = 0.05
    canny_high: float = 0.1
    log_sigma: float = edges.LOG_SIGMA
    texture_kernel_radius: int = 2
    texture_bin_count: int = 32
    percentiles: tuple[float, float] = (1.0, 99.0)

    def used_by(self, name: str) -> dict[str, object]:
        """The settings that shape control ``name`` (its cache key)."""
        used: dict[str, object] = {"size": self.size}
        if name == "canny":
            used.update(sigma=self.canny_sigma, low=self.canny_low, high=self.canny_high)
        elif name == "log":
            used.update(sigma=self.log_sigma)
        elif name.startswith(TEXTURE_PREFIX):
            used.update(kernel_radius=self.texture_kernel_radius, bin_count=self.texture_bin_count)
        return used

    def key(self, name: str) -> str:
        """A folder-safe cache key: the control's name and a digest of the settings it uses."""
        digest = hashlib.sha256(json.dumps(self.used_by(name), sort_keys=True).encode()).hexdigest()[:10]
        return f"{name.replace(':', '_')}-{digest}"


@dataclass
class ControlInputs:
    """What the controls of one image are computed from: the [0, 1] image, its gaze and its lungs.

    ``gaze_findings`` also needs the dictation's ``words`` (REFLACX ``timestamps_transcription``) and
    ``findings``: each finding of the reading with the report words that name it.
    """

    image: np.ndarray
    fixations: pd.DataFrame | None = None
    lungs: np.ndarray | None = None
    words: pd.DataFrame | None = None
    findings: Mapping[str, Sequence[str]] | None = None


def check_names(names: Iterable[str]) -> list[str]:
    """Validate control names; ``texture:`` must name one pyradiomics feature (e.g. ``texture:glcm_Contrast``)."""
    checked = []
    for name in names:
        if name.startswith(TEXTURE_PREFIX):
            feature = name[len(TEXTURE_PREFIX) :]
            if "_" not in feature or expand_features(feature) != [feature]:
                raise ValueError(f"{name!r}: texture controls name one feature, e.g. 'texture:glcm_Contrast'")
        elif name not in BASE_CONTROLS:
            raise ValueError(f"unknown control {name!r}; known: {', '.join(BASE_CONTROLS)}, texture:<feature>")
        checked.append(name)
    if len(set(checked)) != len(checked):
        raise ValueError(f"duplicate control names in {checked}")
    return checked


def is_scaled(name: str) -> bool:
    return name in SCALED or name.startswith(TEXTURE_PREFIX)


def is_gaze(name: str) -> bool:
    """Whether ``name`` is an HVA-CN (gaze) control."""
    return name in GAZE_CONTROLS


def is_texture(name: str) -> bool:
    """Whether ``name`` is one of our texture-map controls (``texture:<feature>``)."""
    return name.startswith(TEXTURE_PREFIX)


EDGES, MASKS = ("canny",), ("lungs",)
"""Controls whose maps are 0 / 1: thin edges, and a filled region; every other map is continuous in [0, 1]."""


def control_kind(name: str) -> str:
    """``"gaze"``, ``"edges"``, ``"mask"`` or ``"continuous"``: what a control's map is (how it may be transformed)."""
    if is_gaze(name):
        return "gaze"
    return "edges" if name in EDGES else "mask" if name in MASKS else "continuous"


def raw_controls(
    names: Sequence[str], inputs: ControlInputs, settings: ControlSettings, *, device: str | torch.device = "cpu"
) -> dict[str, np.ndarray]:
    """Raw (unnormalised) float32 maps ``(size, size)`` of the named controls for one image."""
    names = check_names(names)
    image = np.asarray(inputs.image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    shape = (settings.size, settings.size)
    small = area_resample(image, shape, mean=True)
    found: dict[str, np.ndarray] = {}
    textures = [name[len(TEXTURE_PREFIX) :] for name in names if name.startswith(TEXTURE_PREFIX)]
    if textures:
        maps = texture_maps(small, textures, kernel_radius=settings.texture_kernel_radius,
                            bin_count=settings.texture_bin_count, device=device)  # fmt: skip
        found.update({TEXTURE_PREFIX + feature: maps[feature] for feature in textures})
    tensor = torch.as_tensor(small, device=device)
    for name in names:
        if name == "canny":
            found[name] = (
                edges.canny(tensor, settings.canny_sigma, settings.canny_low, settings.canny_high).cpu().numpy()
            )
        elif name == "sobel":
            found[name] = edges.sobel(tensor).cpu().numpy()
        elif name == "log":
            found[name] = edges.laplacian_of_gaussian(tensor, settings.log_sigma).cpu().numpy()
        elif name == "lungs":
            if inputs.lungs is None:
                raise ValueError("the 'lungs' control needs a lung mask (ControlInputs.lungs)")
            found[name] = area_resample(np.asarray(inputs.lungs, dtype=np.float64), shape, mean=True) >= 0.5
        elif name == "gaze":
            if inputs.fixations is None:
                raise ValueError("the 'gaze' control needs fixations (ControlInputs.fixations)")
            found[name] = fixation_heatmap(inputs.fixations, image.shape, shape)
        elif name == "gaze_findings":
            if inputs.fixations is None or inputs.words is None or inputs.findings is None:
                raise ValueError("the 'gaze_findings' control needs fixations, words and findings (ControlInputs)")
            maps = finding_heatmaps(inputs.fixations, inputs.words, inputs.findings, image.shape, shape)
            found[name] = np.sum(list(maps.values()), axis=0) if maps else np.zeros(shape)
    return {name: np.asarray(found[name], dtype=np.float32) for name in names}


@dataclass
class ControlRegistry:
    """Controls with fitted normalisation: raw maps -> float32 maps in [0, 1], identical in training and sampling."""

    settings: ControlSettings = field(default_factory=ControlSettings)
    scaling: dict[str, tuple[float, float]] = field(default_factory=dict)

    def fit(self, name: str, raw_maps: Iterable[np.ndarray]) -> tuple[float, float]:
        """Fit the robust percentile scaling of ``name`` on the training split's raw maps."""
        values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in raw_maps])
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError(f"no finite values to fit the scaling of control {name!r}")
        low, high = (float(v) for v in np.percentile(values, self.settings.percentiles))
        self.scaling[name] = (low, high)
        return low, high

    def normalise(self, name: str, raw: np.ndarray) -> np.ndarray:
        """The control as float32 in [0, 1]; scaled controls need a fitted (or loaded) scaling."""
        raw = np.asarray(raw, dtype=np.float64)
        if is_scaled(name):
            if name not in self.scaling:
                raise KeyError(f"control {name!r} has no fitted scaling; fit it on the training split or load it")
            low, high = self.scaling[name]
            scaled = (raw - low) / (high - low) if high > low else np.zeros_like(raw)
            result = np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0)
        elif is_gaze(name):
            peak = raw.max()
            result = raw / peak if peak > 0 else np.zeros_like(raw)
        else:
            result = raw
        return result.astype(np.float32)

    def controls(
        self, names: Sequence[str], inputs: ControlInputs, *, device: str | torch.device = "cpu"
    ) -> dict[str, np.ndarray]:
        """Normalised maps of the named controls for a new image (e.g. at sampling time)."""
        raw = raw_controls(names, inputs, self.settings, device=device)
        return {name: self.normalise(name, values) for name, values in raw.items()}

    def to_dict(self) -> dict:
        return {"settings": dataclasses.asdict(self.settings), "scaling": {k: list(v) for k, v in self.scaling.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> ControlRegistry:
        settings = dict(data["settings"])
        settings["percentiles"] = tuple(settings["percentiles"])
        return cls(ControlSettings(**settings), {k: (float(v[0]), float(v[1])) for k, v in data["scaling"].items()})
