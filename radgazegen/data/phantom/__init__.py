"""The embedded phantom data set: synthetic chest radiographs with simulated readings in the REFLACX layout."""

from radgazegen.data.phantom.findings import FINDING_TYPES, FINDINGS_BY_NAME, FindingType
from radgazegen.data.phantom.writer import (
    PhantomCase,
    ensure_phantom,
    generate_case,
    generate_phantom,
    phantom_manifest,
)

__all__ = [
    "FINDING_TYPES",
    "FINDINGS_BY_NAME",
    "FindingType",
    "PhantomCase",
    "ensure_phantom",
    "generate_case",
    "generate_phantom",
    "phantom_manifest",
]
