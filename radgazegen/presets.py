"""Named parameter sets: one source of truth for notebooks (papermill ``preset``), CLI and tests."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Preset:
    """Scale settings of a run; later stages read the fields that concern them."""

    name: str
    purpose: str
    seed: int
    phantom_cases: int  # readings in the generated phantom data set (when no real data is given)
    phantom_size: tuple[int, int]  # phantom image (height, width)
    control_size: int  # square control-map resolution (px)
    device: str  # "cpu", "cuda" or "auto"


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("smoke", "tests and nbval: seconds per notebook", 0, 12, (288, 240), 32, "cpu"),
        Preset("cpu", "the README's book build on a laptop CPU", 0, 120, (576, 480), 64, "cpu"),
        Preset("gpu", "one Colab / workstation GPU", 0, 600, (576, 480), 256, "auto"),
        Preset(
            "paper", "real REFLACX + MIMIC-CXR with local Stable Diffusion 1.5 weights", 0, 0, (576, 480), 512, "auto"
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; raises ``KeyError`` listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
