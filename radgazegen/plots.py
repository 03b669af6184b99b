"""Figures the book shows: scan paths, heatmap overlays, annotated ellipses, reading timelines."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Ellipse


def show_image(ax: Axes, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def show_scanpath(ax: Axes, image: np.ndarray, fixations: pd.DataFrame, title: str | None = None) -> None:
    """Fixations as circles (area ~ duration, colour = time) joined in reading order."""
    show_image(ax, image, title)
    duration = (fixations["timestamp_end_fixation"] - fixations["timestamp_start_fixation"]).to_numpy()
    x, y = fixations["x_position"].to_numpy(), fixations["y_position"].to_numpy()
    ax.plot(x, y, color="white", linewidth=0.5, alpha=0.5)
    points = ax.scatter(
        x,
        y,
        s=400 * duration,
        c=fixations["timestamp_start_fixation"],
        cmap="viridis",
        alpha=0.75,
        edgecolors="white",
        linewidths=0.4,
    )
    plt.colorbar(points, ax=ax, fraction=0.046, pad=0.02, label="time (s)")


def show_overlay(
    ax: Axes, image: np.ndarray, heatmap: np.ndarray, title: str | None = None, alpha: float = 0.85
) -> None:
    """A heatmap (any resolution) over the image, stretched to the image's extent."""
    show_image(ax, image, title)
    height, width = image.shape
    level = np.asarray(heatmap, dtype=float) / max(float(np.max(heatmap)), 1e-300)
    colours = plt.get_cmap("inferno")(level)
    colours[..., 3] = alpha * np.sqrt(level)  # transparent where there is no gaze
    ax.imshow(colours, extent=(0, width, height, 0), interpolation="bilinear")


def draw_ellipses(
    ax: Axes, ellipses: pd.DataFrame, scale: tuple[float, float] = (1.0, 1.0), color: str = "cyan"
) -> None:
    """Outline the ellipses inscribed in each (xmin, ymin, xmax, ymax) box; ``scale`` = (sy, sx)."""
    sy, sx = scale
    for xmin, ymin, xmax, ymax in ellipses[["xmin", "ymin", "xmax", "ymax"]].itertuples(index=False):
        ax.add_patch(
            Ellipse(
                ((xmin + xmax) / 2 * sx, (ymin + ymax) / 2 * sy),
                (xmax - xmin) * sx,
                (ymax - ymin) * sy,
                fill=False,
                edgecolor=color,
                linewidth=1.2,
            )
        )


def show_reading_at(
    ax: Axes, image: np.ndarray, fixations: pd.DataFrame, words: pd.DataFrame, t: float, out_shape: tuple[int, int]
) -> int:
    """The gaze accumulated up to ``t`` seconds over the image, the words spoken so far below it.

    Returns the number of fixations shown (the title says it too).
    """
    from radgazegen.controls.gaze import fixation_heatmap

    seen = fixations[fixations["timestamp_start_fixation"] <= t]
    spoken = " ".join(w for w in words.loc[words["timestamp_end_word"] <= t, "word"] if w != ".")
    if (seen["timestamp_end_fixation"] > seen["timestamp_start_fixation"]).any():
        show_overlay(ax, image, fixation_heatmap(seen, image.shape, out_shape))
    else:
        show_image(ax, image)
    ax.set_title(f"t = {t:.1f} s, {len(seen)} fixations", fontsize=9)
    ax.text(0.5, -0.04, textwrap.fill(spoken[-90:], 38), transform=ax.transAxes, ha="center", va="top", fontsize=7)
    return len(seen)


def reading_timeline(
    image: np.ndarray, fixations: pd.DataFrame, words: pd.DataFrame, times: list[float], out_shape: tuple[int, int]
) -> plt.Figure:
    """Static frames of :func:`show_reading_at` at several reading times."""
    figure, axes = plt.subplots(1, len(times), figsize=(3 * len(times), 3.6))
    for ax, t in zip(np.atleast_1d(axes), times, strict=True):
        show_reading_at(ax, image, fixations, words, t, out_shape)
    figure.tight_layout()
    return figure


def architecture_figure(controls: list[str]) -> plt.Figure:
    """The generator at a glance: text encoder and UNet; ``multi`` (one ControlNet per control) vs ``fused``."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, mode in zip(axes, ("multi", "fused"), strict=True):
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 10)
        ax.set_axis_off()
        ax.set_title("multi (the paper): one ControlNet per control" if mode == "multi"
                     else "fused (ours): one ControlNet over stacked controls", fontsize=10)  # fmt: skip

        def box(x, y, w, h, text, colour, ax=ax):
            ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.1", fc=colour, ec="0.3"))
            ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8, wrap=True)

        def arrow(a, b, text="", ax=ax):
            ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, color="0.3"))
            if text:
                ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.2, text, fontsize=7, ha="center")

        box(0.2, 8.3, 2.6, 1.2, "report prompt\n-> text encoder\n(frozen)", "#dde8f5")
        box(6.6, 3.2, 3.0, 3.6, "UNet\n(trained in stage 1,\nfrozen in stage 2)\nnoise -> image", "#e6f2e1")
        arrow((2.9, 8.9), (8.1, 6.9), "token states (cross-attention)")
        if mode == "multi":
            step = 7.0 / max(len(controls), 1)
            for k, name in enumerate(controls):
                y = 7.2 - k * step
                box(0.2, y, 1.9, min(step * 0.7, 1.0), name, "#fbeed5")
                box(2.8, y, 2.0, min(step * 0.7, 1.0), "ControlNet", "#f6dcdc")
                arrow((2.2, y + 0.3), (2.75, y + 0.3))
                arrow((4.9, y + 0.3), (6.55, 5.0), "")
            ax.text(5.6, 1.2, "residuals x scale_c, summed\n(MultiControlNetModel)", fontsize=8, ha="center")
        else:
            box(0.2, 3.0, 1.9, 4.0, "\n".join(controls) + "\n(stacked as\nchannels)", "#fbeed5")
            box(2.8, 4.2, 2.0, 1.6, "one\nControlNet", "#f6dcdc")
            arrow((2.2, 5.0), (2.75, 5.0))
            arrow((4.9, 5.0), (6.55, 5.0), "residuals")
            ax.text(5.6, 1.2, "per-control scale multiplies\nits input channel", fontsize=8, ha="center")
    figure.tight_layout()
    return figure


def loss_curves(logs: dict[str, list[dict]], smooth: int = 10) -> plt.Figure:
    """Training loss per network (a running mean over ``smooth`` steps beside the raw values)."""
    figure, ax = plt.subplots(figsize=(8, 3.6))
    for name, log in logs.items():
        if not log:
            continue
        steps = np.array([e["step"] for e in log])
        loss = np.array([e["loss"] for e in log])
        line = ax.plot(steps, loss, alpha=0.25)[0]
        window = min(smooth, len(loss))
        ax.plot(steps[window - 1 :], np.convolve(loss, np.ones(window) / window, mode="valid"),
                color=line.get_color(), label=name)  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("denoising loss (MSE)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def image_rows(rows: dict[str, np.ndarray], titles: list[str] | None = None, size: float = 1.8,
               cmap: str = "gray") -> plt.Figure:  # fmt: skip
    """A grid with one labelled row per entry of ``rows`` (each ``(n, H, W)``)."""
    columns = max(len(images) for images in rows.values())
    figure, axes = plt.subplots(len(rows), columns, figsize=(columns * size, len(rows) * size), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(images[c], cmap=cmap, vmin=0, vmax=1)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0 and titles:
                ax.set_title(titles[c], fontsize=8)
    figure.tight_layout()
    return figure


def interval_plot(table: pd.DataFrame, metrics: list[str]) -> plt.Figure:
    """One panel per metric: each row of ``table`` as a point with its ``<metric> low`` / ``high`` interval."""
    metrics = [m for m in metrics if m in table.columns]
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 0.45 * len(table) + 1.2), squeeze=False)
    rows = np.arange(len(table))[::-1]
    for ax, metric in zip(axes[0], metrics, strict=True):
        values = table[metric].to_numpy(float)
        low = table.get(f"{metric} low", table[metric]).to_numpy(float)
        high = table.get(f"{metric} high", table[metric]).to_numpy(float)
        errors = np.clip([values - low, high - values], 0, None)
        ax.errorbar(values, rows, xerr=errors, fmt="o", capsize=3)
        ax.set_yticks(rows, table.index if ax is axes[0][0] else [""] * len(rows), fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


VERDICT_COLOURS = {"supported": "tab:green", "not supported": "tab:red"}
"""Colours of :func:`claims_plot` by verdict (any other verdict, i.e. undecided, is grey)."""


def claims_plot(claims: pd.DataFrame) -> plt.Figure:
    """Each claim's paired difference and 95% interval against 0, one row (and x scale) per claim, coloured by verdict.

    ``claims``: the table of :func:`radgazegen.evaluation.claims.claims_frame`. The shaded side of 0 is the side
    the paper claims (``better``: lower or higher).
    """
    if claims.empty:
        figure = plt.figure(figsize=(7.5, 0.8))
        figure.text(0.5, 0.5, "no claim could be decided (no paired readings)", ha="center", va="center")
        return figure
    figure, axes = plt.subplots(len(claims), 1, figsize=(7.5, 0.55 * len(claims) + 0.6), squeeze=False)
    for ax, (_, row) in zip(axes[:, 0], claims.iterrows(), strict=True):
        colour = VERDICT_COLOURS.get(row["verdict"], "tab:gray")
        value, low, high = (float(row[k]) for k in ("difference", "low", "high"))
        reach = np.nanmax(np.abs([value, low, high, 1e-12])) * 1.15
        ax.set_xlim(-reach, reach)
        ax.axvspan(*((-reach, 0) if row["better"] == "lower" else (0, reach)), color="tab:green", alpha=0.07)
        ax.axvline(0, color="black", linewidth=0.8)
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [0, 0], color=colour, linewidth=3, solid_capstyle="butt")
        ax.plot([value], [0], "o", color=colour)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=7)
        ax.set_ylabel(f"{row['metric']}\n{row['comparison']}", rotation=0, ha="right", va="center", fontsize=7)
        ax.text(1.01, 0.5, row["verdict"], transform=ax.transAxes, fontsize=7, color=colour, va="center")
    figure.tight_layout()
    return figure


def auroc_plot(table: pd.DataFrame) -> plt.Figure:
    """AUROC per finding (rows) and training arm (colours) with bootstrap intervals; ``table`` indexed (arm, finding)."""
    arms = list(dict.fromkeys(table.index.get_level_values("arm")))
    findings = list(dict.fromkeys(table.index.get_level_values("finding")))
    figure, ax = plt.subplots(figsize=(7, 0.5 * len(findings) + 1.2))
    offsets = np.linspace(-0.25, 0.25, len(arms))
    for offset, arm in zip(offsets, arms, strict=True):
        part = table.xs(arm, level="arm").reindex(findings)
        y = np.arange(len(findings))[::-1] + offset
        errors = np.clip([part["auroc"] - part["low"], part["high"] - part["auroc"]], 0, None)
        ax.errorbar(part["auroc"], y, xerr=errors, fmt="o", capsize=2, label=arm)
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_yticks(np.arange(len(findings))[::-1], findings, fontsize=8)
    ax.set_xlabel("AUROC (95% bootstrap interval)")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def group_accuracy_plot(table: pd.DataFrame) -> plt.Figure:
    """Balanced and per-group accuracy per arm as grouped bars with intervals; ``table`` indexed (arm, metric)."""
    arms = list(dict.fromkeys(table.index.get_level_values("arm")))
    metrics = list(dict.fromkeys(table.index.get_level_values("metric")))
    value = next(c for c in table.columns if c not in ("low", "high", "n"))
    figure, ax = plt.subplots(figsize=(1.6 * len(metrics) + 2, 3.2))
    width = 0.8 / len(arms)
    for k, arm in enumerate(arms):
        part = table.xs(arm, level="arm").reindex(metrics)
        x = np.arange(len(metrics)) + k * width
        ax.bar(x, part[value], width, label=arm,
               yerr=np.clip([part[value] - part["low"], part["high"] - part[value]], 0, None), capsize=2)  # fmt: skip
    ax.set_xticks(np.arange(len(metrics)) + width * (len(arms) - 1) / 2, metrics, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def ablation_heatmap(table: pd.DataFrame) -> plt.Figure:
    """The ablation table's numeric columns as a heatmap, each column rescaled to [0, 1] for colour, values printed."""
    import seaborn as sns

    numeric = table.select_dtypes("number")
    spread = (numeric.max() - numeric.min()).replace(0, 1)
    colour = (numeric - numeric.min()) / spread
    figure, ax = plt.subplots(figsize=(0.9 * numeric.shape[1] + 2, 0.5 * len(numeric) + 2))
    sns.heatmap(colour, annot=numeric.round(3), fmt="", cbar=False, cmap="viridis", ax=ax,
                yticklabels=table.index, annot_kws={"fontsize": 7})  # fmt: skip
    ax.set_xticklabels(ax.get_xticklabels(), rotation=40, ha="right", fontsize=8)
    ax.set_title("colour: column-wise min (dark) to max (bright)", fontsize=8)
    figure.tight_layout()
    return figure


def placement_figure(panels, arms: Sequence[str] | None = None, size: float = 1.9) -> plt.Figure:
    """One reading under every gaze move (columns): the moved target gaze, then each arm's image.

    ``panels``: :class:`radgazegen.evaluation.placement.ReadingPanels`. The target's gaze region is outlined in
    orange and the finding the segmenter located in cyan, so a finding that follows the gaze moves from column to
    column with the orange outline; an arm that cannot see the gaze (text only, Rad-CN) draws the same image in
    every column.
    """
    arms = [arm for arm in (arms or panels.images) if arm in panels.images]
    moves = list(panels.targets)
    figure, axes = plt.subplots(len(arms) + 1, len(moves), figsize=(len(moves) * size, (len(arms) + 1) * size),
                                squeeze=False)  # fmt: skip
    for c, how in enumerate(moves):
        rows = [("target gaze", panels.targets[how], "magma", None)]
        rows += [(arm, panels.images[arm][how], "gray", panels.findings[arm][how]) for arm in arms]
        for r, (label, image, cmap, finding) in enumerate(rows):
            ax = axes[r, c]
            ax.imshow(image, cmap=cmap, vmin=0, vmax=1)
            ax.contour(panels.regions[how], levels=[0.5], colors="tab:orange", linewidths=1)
            if finding is not None and finding.any():
                ax.contour(finding, levels=[0.5], colors="cyan", linewidths=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title(f"gaze {how}", fontsize=8)
    figure.suptitle(textwrap.shorten(f"{panels.finding}: “{panels.prompt}”", 110)
                    + "\norange: the gaze region (target); cyan: the finding the segmenter located", fontsize=8)
    figure.tight_layout()
    return figure


def training_curves_plot(curves: pd.DataFrame) -> plt.Figure:
    """One panel per network of :func:`radgazegen.evaluation.curves.training_curves`: each metric against the step.

    A ControlNet's step-0 value (the text-only model, which ignores the control) is drawn as a dashed line of
    the same colour: a curve that rises above it (below, for MAE) is the control being learned.
    """
    networks = list(dict.fromkeys(curves["network"]))
    figure, axes = plt.subplots(1, len(networks), figsize=(3.0 * len(networks), 2.8), squeeze=False)
    for ax, network in zip(axes[0], networks, strict=True):
        rows = curves[curves["network"] == network]
        for metric in dict.fromkeys(rows["metric"]):
            part = rows[rows["metric"] == metric].sort_values("step")
            trained = part[part["step"] > 0]
            line = ax.plot(trained["step"], trained["value"], "o-", markersize=3, label=metric)[0]
            baseline = part[part["step"] == 0]["value"]
            if len(baseline):
                ax.axhline(float(baseline.iloc[0]), color=line.get_color(), linestyle="--", linewidth=0.8)
        ax.set_title(network, fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def map_grid(maps: dict[str, np.ndarray], columns: int = 4, size: float = 2.6, cmap: str = "magma") -> plt.Figure:
    """Titled maps in a grid, ``columns`` wide; an entry titled ``image`` is drawn in grey."""
    rows = -(-len(maps) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size * 1.15), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (title, values) in zip(axes.ravel()[: len(maps)], maps.items(), strict=True):
        ax.imshow(values, cmap="gray" if title == "image" else cmap)
        ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def agreement_plot(differences: pd.Series, tolerance: float = 1e-6, floor: float = 1e-18) -> plt.Figure:
    """The largest relative difference of each ``<class>_<Feature>`` map (log scale, coloured by class) beside
    the ``tolerance``; exact zeros are drawn at ``floor``."""
    import seaborn as sns

    classes = list(dict.fromkeys(name.split("_")[0] for name in differences.index))
    palette = dict(zip(classes, sns.color_palette("tab10", len(classes)), strict=True))
    shown = differences.clip(lower=floor)
    figure, ax = plt.subplots(figsize=(14, 3.6))
    ax.bar(range(len(shown)), shown, color=[palette[name.split("_")[0]] for name in shown.index])
    ax.axhline(tolerance, color="red", linestyle="--", linewidth=1, label=f"tolerance {tolerance:g}")
    ax.set_yscale("log")
    ax.set_ylim(floor, max(1e-4, float(shown.max()) * 10))
    ax.set_xticks(range(len(shown)), [name.split("_", 1)[1] for name in shown.index], rotation=90, fontsize=6)
    ax.set_ylabel("max relative difference")
    ax.set_title(f"texture_maps vs pyradiomics, every voxel; colours: {', '.join(classes)} (0 drawn at {floor:g})",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def speedup_plot(table: pd.DataFrame, targets: Sequence[float] = (100, 300)) -> plt.Figure:
    """One panel per machine of :func:`radgazegen.benchmarks.radiomic_maps_table`: each method's speed-up over the
    reference on the same crop and machine (log scale), one bar per crop size; dotted lines at ``targets`` where the
    reference is pyradiomics."""
    import seaborn as sns

    machines = list(dict.fromkeys(table["machine"]))
    shown = table[table["speedup"] != 1].assign(row=lambda t: t["method / device"] + "\n" + t["crop"],
                                              px=lambda t: t["size"].astype(str) + " px")  # fmt: skip
    heights = [max(2.4, 0.45 * shown.loc[shown["machine"] == m, "row"].nunique() + 1.2) for m in machines]
    figure, axes = plt.subplots(len(machines), 1, figsize=(9, sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights})  # fmt: skip
    for ax, machine in zip(axes[:, 0], machines, strict=True):
        part = shown[shown["machine"] == machine]
        sizes = [f"{size} px" for size in sorted(set(part["size"]))]
        sns.barplot(data=part, y="row", x="speedup", hue="px", hue_order=sizes, ax=ax)
        reference = table.loc[table["machine"] == machine, "reference"].iloc[0]
        if reference.startswith("pyradiomics"):
            for target in targets:
                ax.axvline(target, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_title(f"{machine}, measured {part['date'].iloc[0]}; reference (1x): {reference}", fontsize=9)
        ax.set_xlabel("speed-up over the reference on the same crop and machine (log scale)")
        ax.set_ylabel("")
        ax.tick_params(axis="y", labelsize=8)
        ax.legend(title="crop size", fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def validation_strip(panels: Sequence[tuple[str, np.ndarray]], title: str) -> plt.Figure:
    """A training run's validation images top to bottom (:func:`radgazegen.models.train.validation_panels`):
    the control maps (``"controls"``, in colour) then the samples at each validation step (grey, 8-bit)."""
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 1.9 * len(panels)), squeeze=False)
    for ax, (label, image) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(image, cmap="magma" if label == "controls" else "gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, fontsize=8)
    axes[0, 0].set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def adherence_bars(long: pd.DataFrame) -> plt.Figure:
    """Mean (and standard error) of each control's adherence metric per sampling condition, side by side
    (rows ``condition, control, metric, value`` as :meth:`~radgazegen.evaluation.protocols.SamplingAdherence.long`)."""
    long = long.assign(label=long["control"] + "\n(" + long["metric"] + ")")
    labels, names = list(dict.fromkeys(long["label"])), list(dict.fromkeys(long["condition"]))
    width = 0.8 / len(names)
    figure, ax = plt.subplots(figsize=(9, 3.6))
    for k, name in enumerate(names):
        part = long[long["condition"] == name].groupby("label")["value"]
        means, errors = part.mean().reindex(labels), part.sem().reindex(labels)
        ax.bar(np.arange(len(labels)) + k * width, means, width, yerr=errors, label=name, capsize=2)
    ax.set_xticks(np.arange(len(labels)) + width * (len(names) - 1) / 2, labels, fontsize=8)
    ax.set_ylabel("agreement with the given control")
    ax.legend(fontsize=8, ncols=len(names))
    figure.tight_layout()
    return figure


def reidentification_plot(summary: pd.DataFrame, metric: str = "top-1") -> plt.Figure:
    """Per space, each configuration's re-identification rate (any contributor) with its interval, chance dotted."""
    spaces = list(dict.fromkeys(summary.index.get_level_values("space")))
    shown = summary.xs("any", level="role")
    names = list(dict.fromkeys(shown.index.get_level_values("configuration")))
    figure, axes = plt.subplots(1, len(spaces), figsize=(3.4 * len(spaces), 0.42 * len(names) + 1.3), squeeze=False)
    rows = np.arange(len(names))[::-1]
    for ax, space in zip(axes[0], spaces, strict=True):
        table = shown.xs(space, level="space").reindex(names)
        values = table[metric].to_numpy(float)
        errors = np.clip([values - table[f"{metric} low"].to_numpy(float), table[f"{metric} high"].to_numpy(float) - values],
                         0, None)  # fmt: skip
        ax.errorbar(values, rows, xerr=errors, fmt="o", capsize=3, color="tab:red", label="re-identified")
        ax.scatter(table[f"chance {metric}"], rows, marker="|", s=120, color="grey", label="chance")
        ax.set_xlim(-0.03, 1.03)
        ax.set_yticks(rows, names if ax is axes[0][0] else [""] * len(rows), fontsize=8)
        ax.set_title(f"{space}: {metric}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def privacy_cases(cases: Sequence[dict], title: str, size: float = 1.6) -> plt.Figure:
    """Each worst case as a row: the sample, its nearest training image, and each contributor's training image."""
    roles = list(dict.fromkeys(role for case in cases for role in case["contributors"]))
    columns = 2 + len(roles)
    figure, axes = plt.subplots(len(cases), columns, figsize=(size * columns, size * len(cases) + 0.4), squeeze=False)
    for row, case in zip(axes, cases, strict=True):
        verdict = "a contributor" if case["nearest is a contributor"] else "another patient"
        show_image(row[0], case["sample"], f"sample ({case['reading']})")
        show_image(row[1], case["nearest"], f"nearest: {verdict}")
        for ax, role in zip(row[2:], roles, strict=True):
            if role in case["contributors"]:
                show_image(ax, case["contributors"][role], f"{role}'s image")
            else:
                ax.axis("off")
    for row, case in zip(axes, cases, strict=True):
        row[0].set_ylabel(f"margin {case['margin']:.2f}", fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def frontier_plot(table: pd.DataFrame, privacy: str, utilities: Sequence[str]) -> plt.Figure:
    """One panel per utility measure: each configuration (a point, both intervals) at its re-identification rate."""
    utilities = [u for u in utilities if u in table.columns and table[u].notna().any()]
    columns = min(3, len(utilities))
    rows = -(-len(utilities) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.ravel()[len(utilities):]:
        figure.delaxes(ax)
    colours = plt.get_cmap("tab10")
    for ax, utility in zip(axes.ravel(), utilities, strict=False):
        for k, (name, row) in enumerate(table.iterrows()):
            x, y = row[privacy], row[utility]
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            xerr = np.clip([[x - row.get(f"{privacy} low", x)], [row.get(f"{privacy} high", x) - x]], 0, None)
            yerr = np.clip([[y - row.get(f"{utility} low", y)], [row.get(f"{utility} high", y) - y]], 0, None)
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=2, color=colours(k % 10), label=name)
        ax.set_xlabel(privacy, fontsize=8)
        ax.set_title(utility, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def memorization_plot(distances: dict[str, np.ndarray], held_out: np.ndarray, space: str, quantile: float = 0.05
                      ) -> plt.Figure:  # fmt: skip
    """Each configuration's distances to the nearest training image beside the held-out real images' own (one row
    each, one dot per image), with the held-out images' ``quantile`` dashed: samples left of it count as memorized."""
    rows = {"held-out real": np.asarray(held_out, float), **{k: np.asarray(v, float) for k, v in distances.items()}}
    figure, ax = plt.subplots(figsize=(6.4, 0.38 * len(rows) + 1.2))
    rng = np.random.default_rng(0)
    for k, values in enumerate(rows.values()):
        y = len(rows) - 1 - k + rng.uniform(-0.15, 0.15, len(values))
        ax.scatter(values, y, s=9, alpha=0.6, color="grey" if k == 0 else "tab:blue")
    ax.axvline(np.quantile(rows["held-out real"], quantile), color="tab:red", linestyle="--",
               label=f"held-out {quantile:.0%} quantile")  # fmt: skip
    ax.set_yticks(range(len(rows))[::-1], list(rows), fontsize=8)
    ax.set_xlabel(f"distance to the nearest training image ({space})", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
