"""The results page's tables, rendered from a run's metrics files (never typed by hand).

``book/results.md`` includes ``book/chapters/results_tables.md``, which :func:`write_results_tables`
writes from ``<run_dir>/metrics/*.csv`` (the tables chapters 05-09 save) before the book is built.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from radgazegen.io import write_text_atomic
from radgazegen.runs import read_manifest

RESULTS_TABLES = Path("book") / "chapters" / "results_tables.md"


def _cell(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _interval(row: pd.Series, column: str) -> str:
    """``value [low, high]`` when the row has the interval columns, else the value."""
    value = row.get(column, float("nan"))
    low, high = row.get(f"{column} low"), row.get(f"{column} high")
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return _cell(value)
    return f"{_cell(value)} [{_cell(low)}, {_cell(high)}]"


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table of ``table`` (index as the first column)."""
    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in table.iterrows():
        label = " / ".join(map(str, index)) if isinstance(index, tuple) else str(index)
        lines.append("| " + " | ".join([label, *(_cell(v) for v in row)]) + " |")
    return "\n".join(lines)


def _read(run_dir: Path, name: str, index_columns: int = 1) -> pd.DataFrame | None:
    path = run_dir / "metrics" / f"{name}.csv"
    return pd.read_csv(path, index_col=list(range(index_columns))) if path.is_file() else None


def results_tables(run_dir: str | Path) -> str:
    """Markdown of every evaluation table found in ``run_dir/metrics`` (a note for each one missing)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    preset = next(
        (entry.get("preset") for entry in manifest.get("metrics", {}).values() if isinstance(entry, dict)), "?"
    )
    parts = [f"Run `{run_dir.name}` (preset **{preset}**), rendered from `{run_dir / 'metrics'}`.\n"]

    quality = _read(run_dir, "quality")
    parts.append("### Quality and diversity (chapter 5)\n")
    if quality is None:
        parts.append("*Not computed yet: run chapter 5.*\n")
    else:
        columns = [c for c in ("FRD", "FID (CXR)", "KID (CXR)", "MS-SSIM", "SSIM to real", "agreement AUROC",
                               "FID (Inception)", "CLIP score") if c in quality.columns]  # fmt: skip
        shown = pd.DataFrame({c: [_interval(row, c) for _, row in quality.iterrows()] for c in columns},
                             index=quality["label"].fillna(pd.Series(quality.index, index=quality.index)))  # fmt: skip
        shown.index.name = "samples"
        parts.append(markdown_table(shown) + "\n")

    classification = _read(run_dir, "classification", 2)
    parts.append("### Classification with generated data (chapter 6): AUROC on held-out real images\n")
    if classification is None:
        parts.append("*Not computed yet: run chapter 6.*\n")
    else:
        table = classification.reset_index()
        shown = table.pivot(index="finding", columns="arm", values="auroc")
        order = list(dict.fromkeys(table["finding"]))
        shown = shown.reindex([f for f in order if f != "mean"] + ["mean"])[list(dict.fromkeys(table["arm"]))]
        parts.append(markdown_table(shown) + "\n")

    longtail = _read(run_dir, "longtail", 2)
    parts.append("### Long-tailed learning (chapter 7)\n")
    if longtail is None:
        parts.append("*Not computed yet: run chapter 7.*\n")
    else:
        value = next(c for c in longtail.columns if c not in ("low", "high", "n"))
        table = longtail.reset_index()
        table["text"] = [f"{_cell(r[value])} [{_cell(r['low'])}, {_cell(r['high'])}]" if "low" in table else _cell(r[value])
                         for _, r in table.iterrows()]  # fmt: skip
        shown = table.pivot(index="arm", columns="metric", values="text")
        shown = shown.reindex(list(dict.fromkeys(table["arm"])))[list(dict.fromkeys(table["metric"]))]
        parts.append(markdown_table(shown) + "\n")

    ablation = _read(run_dir, "ablation")
    parts.append("### Ablations at an equal budget (chapter 8)\n")
    parts.append("*Not computed yet: run chapter 8.*\n" if ablation is None else markdown_table(ablation) + "\n")

    attribution = _read(run_dir, "attribution", 3)
    parts.append("### Attributions against gaze and findings (chapter 9)\n")
    parts.append("*Not computed yet: run chapter 9.*\n" if attribution is None else markdown_table(attribution) + "\n")
    return "\n".join(parts)


def write_results_tables(root: str | Path, run_dir: str | Path) -> Path:
    """Write the run's tables to ``<root>/book/chapters/results_tables.md`` (atomically)."""
    path = Path(root) / RESULTS_TABLES
    write_text_atomic(path, results_tables(run_dir))
    return path
