"""The results page's tables, rendered from a run's metrics files (never typed by hand).

``book/results.md`` includes ``book/chapters/results_tables.md``, which :func:`write_results_tables`
writes from ``<run_dir>/metrics/*.csv`` (the tables chapters 05-10 save) before the book is built.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd

from radgazegen.io import atomic_path, write_text_atomic
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


QUALITY_COLUMNS = ("FRD", "FRD (CheXGenBench)", "FRD (torch, Original)", "FID (CXR)", "KID (CXR)", "MS-SSIM",
                   "SSIM to real", "agreement AUROC", "FID (Inception)", "KID (Inception)", "FID (RAD-DINO)",
                   "KID (RAD-DINO)", *(f"{m} ({net})" for net in ("RAD-DINO", "CXR")
                                       for m in ("precision", "recall", "density", "coverage")), "CLIP score")  # fmt: skip
"""The quality table's columns as the results page shows them, in order (those a run computed)."""


def _quality(table: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in QUALITY_COLUMNS if c in table.columns]
    shown = pd.DataFrame({c: [_kid(row, c) if c.startswith("KID") else _interval(row, c) for _, row in table.iterrows()]
                          for c in columns},
                         index=table["label"].fillna(pd.Series(table.index, index=table.index)))  # fmt: skip
    shown.index.name = "samples"
    return shown


def _kid(row: pd.Series, column: str) -> str:
    """KID as ``mean ± std`` over its subsets."""
    std = row.get(f"{column} std")
    return _cell(row[column]) if std is None or pd.isna(std) else f"{_cell(row[column])} ± {_cell(std)}"


CLAIMS_FILES = ("claims_placement", "claims_quality", "claims_privacy", "claims_classification", "claims_longtail",
                "claims_adherence")  # fmt: skip
"""The claims each chapter saves (09's gaze placement first, then 05, 06, 07, 08, 09), in the order the results page lists them."""
PLACEMENT_FIGURE = "placement.png"
"""The gaze-placement figure chapter 09 saves in ``<run_dir>/metrics`` and the results page leads with."""


def claims_table(run_dir: str | Path) -> pd.DataFrame | None:
    """Every claim the run's chapters decided (:func:`radgazegen.evaluation.claims.claims_frame` rows), or ``None``."""
    parts = [pd.read_csv(path, index_col=0) for name in CLAIMS_FILES if (path := Path(run_dir) / "metrics" / f"{name}.csv").is_file()]
    return pd.concat(parts, ignore_index=True) if parts else None


def _claims(table: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame({
        "claim (paper)": table["claim"],
        "metric": table["metric"],
        "paired difference": table["comparison"],
        "estimate [95% interval]": [f"{r['difference']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
                                    if pd.notna(r["low"]) else f"{r['difference']:+.3f}" for _, r in table.iterrows()],
        "better": table["better"],
        "verdict": [f"**{v}**" for v in table["verdict"]],
        "interval": table["interval"],
    })  # fmt: skip
    return shown.set_index("claim (paper)")


def placement_view(table: pd.DataFrame) -> pd.DataFrame:
    """The placement summary as text, arm x metric: mean; paired difference and ratio against text only [95% interval]."""
    long = table.reset_index()
    text = []
    for _, row in long.iterrows():
        parts = [_cell(row["mean"])]
        if pd.notna(row.get("difference")) and row["arm"] != "text":
            label = "mean" if row["metric"] == "follows" else "−text"
            parts.append(f"{label} {_interval(row, 'difference')}")
        if pd.notna(row.get("ratio")):
            parts.append(f"×text {_interval(row, 'ratio')}")
        text.append("; ".join(parts))
    long["text"] = text
    shown = long.pivot(index="arm", columns="metric", values="text")
    return shown.reindex(list(dict.fromkeys(long["arm"])))[list(dict.fromkeys(long["metric"]))]


def privacy_view(summary: pd.DataFrame, role: str = "any") -> pd.DataFrame:
    """The privacy audit as text, one row per configuration: its chance of a top-1 hit, then per space the shares
    re-identified at top-1 and top-5 and memorized [95% interval] (the held-out images' own share in the column's
    name), for the contributors of ``role``."""
    long = summary.reset_index()
    long = long[long["role"] == role]
    names = list(dict.fromkeys(long["configuration"]))
    columns: dict[str, list[str]] = {}
    for space, rows in long.groupby("space", sort=False):
        rows = rows.set_index("configuration").reindex(names)
        if not columns:
            columns["chance top-1"] = [_cell(v) for v in rows["chance top-1"]]
        held = rows["held-out share"].dropna()
        for metric in ("top-1", "top-5", "memorized"):
            label = f"{space}: {metric}" + (f" (held-out {_cell(held.iloc[0])})" if metric == "memorized" and len(held) else "")
            columns[label] = [_interval(row, metric) for _, row in rows.iterrows()]
    return pd.DataFrame(columns, index=pd.Index(names, name="configuration"))


def interval_view(table: pd.DataFrame) -> pd.DataFrame:
    """Every ``<metric>`` with ``<metric> low`` / ``high`` columns as ``value [low, high]``; other columns as they are."""
    metrics = [c for c in table.columns if not c.endswith((" low", " high"))]
    return pd.DataFrame({c: [_interval(row, c) for _, row in table.iterrows()] for c in metrics}, index=table.index)


def target_view(targets: pd.DataFrame) -> pd.DataFrame:
    """The privacy target's criteria: estimate [95% interval] and whether each is met."""
    return pd.DataFrame({"estimate [95% interval]": [f"{r['estimate']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
                                                     for _, r in targets.iterrows()],
                         "met": ["yes" if bool(m) else "**no**" for m in targets["met"]]}, index=targets.index)  # fmt: skip


def _classification(table: pd.DataFrame) -> pd.DataFrame:
    long = table.reset_index()
    shown = long.pivot(index="finding", columns="arm", values="auroc")
    findings = [f for f in dict.fromkeys(long["finding"]) if f != "mean"] + ["mean"]
    return shown.reindex(findings)[list(dict.fromkeys(long["arm"]))]


def _longtail(table: pd.DataFrame) -> pd.DataFrame:
    long = table.reset_index()
    long["text"] = [f"{_cell(r['accuracy'])} [{_cell(r['low'])}, {_cell(r['high'])}]" for _, r in long.iterrows()]
    shown = long.pivot(index="arm", columns="metric", values="text")
    return shown.reindex(list(dict.fromkeys(long["arm"])))[list(dict.fromkeys(long["metric"]))]


SECTIONS = (  # metrics file, index columns, chapter, heading, how the table is shown
    ("placement", 1, 9, "Gaze placement: mean; paired difference and ratio against text only [95% interval]", placement_view),
    ("quality", 1, 5, "Quality and diversity", _quality),
    ("privacy", 3, 6, "Privacy: do the samples re-draw the patients whose data conditioned them? [95% interval]",
     privacy_view),
    ("frontier", 1, 6, "The privacy–utility frontier [95% interval]", interval_view),
    ("privacy_target", 2, 6, "A configuration with anatomy that re-draws no patient: the target's criteria", target_view),
    ("classification", 2, 7, "Classification with generated data: AUROC on held-out real images", _classification),
    ("longtail", 2, 8, "Long-tailed learning: accuracy [95% interval]", _longtail),
    ("ablation", 1, 9, "Ablations at an equal budget", lambda table: table),
    ("attribution", 3, 10, "Attributions against gaze and findings", lambda table: table),
)


def results_tables(run_dir: str | Path) -> str:
    """Markdown of every evaluation table found in ``run_dir/metrics`` (a note for each one missing)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    preset = next(
        (entry.get("preset") for entry in manifest.get("metrics", {}).values() if isinstance(entry, dict)), "?"
    )
    parts = [f"Run `{run_dir.name}` (preset **{preset}**), rendered from the run's `metrics/*.csv` files.\n"]
    if (run_dir / "metrics" / PLACEMENT_FIGURE).is_file():
        parts.append("![One held-out reading, its gaze moved: where each arm draws the finding]"
                     f"({RESULTS_TABLES.parent.name}/{PLACEMENT_FIGURE})\n")  # relative to book/results.md, which includes it
    parts.append("### The paper's claims, decided by paired differences\n")
    claims = claims_table(run_dir)
    if claims is None:
        parts.append("*No claim decided yet: run chapters 5-9.*\n")
    else:
        counts = claims["verdict"].value_counts()
        parts.append(", ".join(f"{counts[v]} {v}" for v in counts.index) + f" of {len(claims)} claims.\n")
        parts.append(markdown_table(_claims(claims)) + "\n")
    for name, index_columns, chapter, heading, show in SECTIONS:
        parts.append(f"### {heading} (chapter {chapter})\n")
        path = run_dir / "metrics" / f"{name}.csv"
        if not path.is_file():
            parts.append(f"*Not computed yet: run chapter {chapter}.*\n")
            continue
        table = pd.read_csv(path, index_col=list(range(index_columns)))
        parts.append(markdown_table(show(table)) + "\n")
    return "\n".join(parts)


def write_results_tables(root: str | Path, run_dir: str | Path) -> Path:
    """Write the run's tables to ``<root>/book/chapters/results_tables.md`` (atomically)."""
    path = Path(root) / RESULTS_TABLES
    figure = Path(run_dir) / "metrics" / PLACEMENT_FIGURE
    if figure.is_file():
        with atomic_path(path.parent / PLACEMENT_FIGURE) as tmp:
            shutil.copyfile(figure, tmp)
    write_text_atomic(path, results_tables(run_dir))
    return path
