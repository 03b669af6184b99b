"""pyradiomics feature names for the voxel-wise texture maps: which exist, and how a request expands."""

from __future__ import annotations

from collections.abc import Iterable

FIRSTORDER = (
    "Energy", "TotalEnergy", "Entropy", "Minimum", "10Percentile", "90Percentile", "Maximum", "Mean", "Median",
    "InterquartileRange", "Range", "MeanAbsoluteDeviation", "RobustMeanAbsoluteDeviation", "RootMeanSquared",
    "Skewness", "Kurtosis", "Variance", "Uniformity",
)  # fmt: skip
GLCM = (
    "Autocorrelation", "JointAverage", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast",
    "Correlation", "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "JointEnergy", "JointEntropy",
    "Imc1", "Imc2", "Idm", "MCC", "Idmn", "Id", "Idn", "InverseVariance", "MaximumProbability", "SumAverage",
    "SumEntropy", "SumSquares",
)  # fmt: skip
GLDM = (
    "SmallDependenceEmphasis", "LargeDependenceEmphasis", "GrayLevelNonUniformity", "DependenceNonUniformity",
    "DependenceNonUniformityNormalized", "GrayLevelVariance", "DependenceVariance", "DependenceEntropy",
    "LowGrayLevelEmphasis", "HighGrayLevelEmphasis", "SmallDependenceLowGrayLevelEmphasis",
    "SmallDependenceHighGrayLevelEmphasis", "LargeDependenceLowGrayLevelEmphasis", "LargeDependenceHighGrayLevelEmphasis",
)  # fmt: skip
NGTDM = ("Coarseness", "Contrast", "Busyness", "Complexity", "Strength")
GLRLM = (
    "ShortRunEmphasis", "LongRunEmphasis", "GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized",
    "RunLengthNonUniformity", "RunLengthNonUniformityNormalized", "RunPercentage", "GrayLevelVariance", "RunVariance",
    "RunEntropy", "LowGrayLevelRunEmphasis", "HighGrayLevelRunEmphasis", "ShortRunLowGrayLevelEmphasis",
    "ShortRunHighGrayLevelEmphasis", "LongRunLowGrayLevelEmphasis", "LongRunHighGrayLevelEmphasis",
)  # fmt: skip
GLSZM = (
    "SmallAreaEmphasis", "LargeAreaEmphasis", "GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized",
    "SizeZoneNonUniformity", "SizeZoneNonUniformityNormalized", "ZonePercentage", "GrayLevelVariance", "ZoneVariance",
    "ZoneEntropy", "LowGrayLevelZoneEmphasis", "HighGrayLevelZoneEmphasis", "SmallAreaLowGrayLevelEmphasis",
    "SmallAreaHighGrayLevelEmphasis", "LargeAreaLowGrayLevelEmphasis", "LargeAreaHighGrayLevelEmphasis",
)  # fmt: skip
IMPLEMENTED: dict[str, tuple[str, ...]] = {
    "firstorder": FIRSTORDER, "glcm": GLCM, "glrlm": GLRLM, "glszm": GLSZM, "gldm": GLDM, "ngtdm": NGTDM,
}  # fmt: skip
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
