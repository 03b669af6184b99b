"""The benchmark results that ship with the package: what ``benchmarks/*.py`` measured, as tables.

The JSON files live in ``radgazegen/benchmark_results/`` (package data), so a chapter run from an installed
package (Colab) shows them too; re-running a benchmark from the repository root writes there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "benchmark_results"
"""Where the measured benchmark results are (package data)."""


def benchmark_runs(name: str, results: str | Path = RESULTS) -> list[dict]:
    """Every stored run of benchmark ``name`` (files ``<name>_<machine>.json``), sorted by file name."""
    runs = []
    for path in sorted(Path(results).glob(f"{name}_*.json")):
        try:
            runs.append(json.loads(path.read_text()) | {"file": path.name})
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a benchmark result ({err})") from err
    return runs


def machine_name(hardware: dict) -> str:
    """``"2 CPU cores"`` or ``"16 CPU cores + NVIDIA H100"`` from a result's ``hardware`` entry."""
    gpu = hardware.get("gpu")
    return f"{hardware['cpus']} CPU cores" + (f" + {gpu}" if gpu else "")


OLD_CROP = "corner (800, 700)"
"""Runs stored before the benchmark named its crops cropped RG1_UNCR.dcm at its default corner (800, 700)."""


def radiomic_maps_table(results: str | Path = RESULTS) -> pd.DataFrame:
    """One row per method, device, crop, size and machine of ``benchmarks/radiomic_maps.py``, with the speed-up
    over that run's reference (pyradiomics, or ``texture_maps`` on the CPU where pyradiomics is not installed)
    on the same crop and machine; empty when no result is stored."""
    rows = []
    for run in benchmark_runs("radiomic_maps", results):
        references = {}
        for row in run["rows"]:
            key = (row.get("crop", OLD_CROP), row.get("size", run.get("size")))
            reference = references.setdefault(key, row)  # each crop's first row is its reference
            rows.append({"machine": machine_name(run["hardware"]), "crop": key[0], "size": key[1],
                         "reference": run.get("reference") or reference["method"], "date": run.get("date"),
                         "cold_seconds": float("nan"), **row, "speedup": reference["seconds"] / row["seconds"]})  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        table["method / device"] = table["method"] + " / " + table["device"]
    return table


def radiomic_maps_summary(results: str | Path = RESULTS) -> pd.DataFrame:
    """Per machine of ``benchmarks/radiomic_maps.py``: the per-call overhead, the copy bandwidth and each batch
    comparison (``texture_maps_batch`` against one ``texture_maps`` call per image); runs that did not measure
    them are left out."""
    rows = []
    for run in benchmark_runs("radiomic_maps", results):
        for batch in run.get("batches", []):
            rows.append({"machine": machine_name(run["hardware"]), "per-call overhead (s)": run["overhead_seconds"],
                         "copy bandwidth (GB/s)": run["copy_bandwidth_bytes_per_second"] / 1e9, **batch})  # fmt: skip
    return pd.DataFrame(rows)
