"""A pyradiomics feature class's voxel-wise features, discovered from the functions that compute them.

pyradiomics lists a class's features by inspecting its ``get<Name>FeatureValue`` methods
(``getFeatureNames``), so a feature exists exactly when its function does. Our feature functions are
plain module functions, so each registers itself with its class's :class:`FeatureSet` by a decorator: the
pyradiomics name is the function's name in CamelCase (``total_energy`` -> ``TotalEnergy``) unless given,
where the pyradiomics name is not one (``10Percentile``, ``MCC``, ``Id``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import torch

Inputs = TypeVar("Inputs")
Feature = Callable[[Inputs], torch.Tensor]


def camel_case(function_name: str) -> str:
    """``"dependence_non_uniformity"`` -> ``"DependenceNonUniformity"``, ``"imc1"`` -> ``"Imc1"``."""
    return "".join(part[:1].upper() + part[1:] for part in function_name.split("_"))


class FeatureSet(dict[str, Callable[[Inputs], torch.Tensor]], Generic[Inputs]):
    """The features of one pyradiomics class (``cls``: ``"glcm"``, ...), pyradiomics name -> function, in the
    order their functions are defined; ``kernel_sums`` names those that need only sums over each kernel's
    items (a class's cheaper input, e.g. GLCM's box-filtered pair sums, can compute them)."""

    def __init__(self, cls: str) -> None:
        super().__init__()
        self.cls = cls
        self.kernel_sums: set[str] = set()

    def feature(self, function: Feature | None = None, *, name: str | None = None, kernel_sums: bool = False):
        """Register ``function`` as the feature ``name`` (default: its name in CamelCase); usable as a decorator.

        ``kernel_sums``: the function reads only sums over each kernel's items from its input.
        """

        def register(found: Feature) -> Feature:
            key = name or camel_case(found.__name__)
            if key in self:
                raise ValueError(f"{self.cls} feature {key!r} is defined twice ({self[key].__name__}, {found.__name__})")
            self[key] = found
            if kernel_sums:
                self.kernel_sums.add(key)
            return found

        return register if function is None else register(function)
