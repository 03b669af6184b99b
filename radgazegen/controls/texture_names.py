"""pyradiomics feature names for the voxel-wise texture maps: which exist (found from the feature functions of
each class module, :class:`~radgazegen.controls.texture_feature_set.FeatureSet`), and how a request expands."""

from __future__ import annotations

from collections.abc import Iterable

from radgazegen.controls import texture_firstorder, texture_glcm, texture_neighbourhood, texture_zones
from radgazegen.controls.texture_feature_set import FeatureSet

FEATURE_SETS: dict[str, FeatureSet] = {
    found.cls: found
    for found in (
        texture_firstorder.FEATURES, texture_glcm.FEATURES, texture_zones.GLRLM, texture_zones.GLSZM,
        texture_neighbourhood.GLDM, texture_neighbourhood.NGTDM,
    )
}  # fmt: skip
"""Every texture class's features, name -> function, as their modules register them."""
IMPLEMENTED: dict[str, tuple[str, ...]] = {cls: tuple(found) for cls, found in FEATURE_SETS.items()}
"""The non-deprecated features of every pyradiomics texture class (shape aside), all computed by
:func:`~radgazegen.controls.texture.texture_maps`; :mod:`~radgazegen.controls.reference` runs pyradiomics itself."""


def expand_features(features: str | Iterable[str]) -> list[str]:
    """Expand ``"glcm"`` / ``"firstorder_Mean"`` style names into full ``"<class>_<Feature>"`` names.

    A class name alone stands for all its non-deprecated features. Unknown classes or features raise a
    ``ValueError`` that lists what exists. Order is kept, duplicates are dropped.
    """
    requested = [features] if isinstance(features, str) else list(features)
    if not requested:
        raise ValueError("no texture features requested")
    names: list[str] = []
    for item in requested:
        cls, _, feature = str(item).partition("_")
        known = _class_features(cls)
        if not feature:
            names.extend(f"{cls}_{name}" for name in known)
        elif feature in known:
            names.append(f"{cls}_{feature}")
        else:
            raise ValueError(f"unknown {cls} feature {feature!r}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))


def _class_features(cls: str) -> tuple[str, ...]:
    if cls in IMPLEMENTED:
        return IMPLEMENTED[cls]
    raise ValueError(f"unknown feature class {cls!r}; known: {', '.join(IMPLEMENTED)}")
