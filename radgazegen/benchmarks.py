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


def radiomic_maps_table(results: str | Path = RESULTS) -> pd.DataFrame:
    """One row per method, device, crop and machine of ``benchmarks/radiomic_maps.py``, with the speed-up over
    that run's reference (its first row, pyradiomics) on the same machine; empty when no result is stored."""
    rows = []
    for run in benchmark_runs("radiomic_maps", results):
        reference = run["rows"][0]
        for row in run["rows"]:
            rows.append({"machine": machine_name(run["hardware"]), "crop": f"{run['size']}x{run['size']}",
                         "reference": run.get("reference", reference["method"]), **row,
                         "speedup": reference["seconds"] / row["seconds"]})  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        table["method / device"] = table["method"] + " / " + table["device"]
    return table
