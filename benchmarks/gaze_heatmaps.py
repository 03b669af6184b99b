"""Gaze heatmaps: the per-fixation full-image recipe (reference) vs radgazegen's separable one.

Synthetic REFLACX-size readings (about 3000 x 2500 images, about 300 fixations each, output 512 x 512).
The reference builds each fixation's Gaussian over the full image (as REFLACX's own script does),
sums, normalises and area-resamples to the output; radgazegen renders all cases batched. The
reference is slow, so it runs on the first ``--reference-cases`` cases and its per-case time is
compared with ours; the difference is measured on those cases.

    python benchmarks/gaze_heatmaps.py [--cases 500] [--reference-cases 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from radgazegen.controls.gaze import fixation_heatmaps
from radgazegen.controls.gaze_reference import per_fixation_heatmap
from radgazegen.data.reflacx import SHOWN_RECT_COLUMNS


def synthetic_reading(rng: np.random.Generator) -> tuple[pd.DataFrame, tuple[int, int]]:
    """One REFLACX-like reading: image shape and ~300 fixations with the REFLACX columns."""
    height, width = int(rng.integers(2800, 3200)), int(rng.integers(2300, 2700))
    count = int(rng.integers(250, 350))
    start = np.cumsum(rng.uniform(0.1, 0.5, count))
    duration = rng.lognormal(np.log(0.25), 0.4, count)
    shown = np.tile([-300.0, 0.0, width + 300.0, float(height)], (count, 1))
    zoomed = rng.random(count) < 0.2
    shown[zoomed] = [width * 0.2, height * 0.2, width * 0.7, height * 0.6]
    x = rng.uniform(shown[:, 0].clip(0), shown[:, 2].clip(max=width - 1))
    y = rng.uniform(shown[:, 1].clip(0), shown[:, 3].clip(max=height - 1))
    resolution = np.where(zoomed, 30.0, 50.0) * rng.uniform(0.95, 1.05, (2, count))
    frame = pd.DataFrame(
        {
            "timestamp_start_fixation": start,
            "timestamp_end_fixation": start + duration,
            "x_position": x,
            "y_position": y,
            "angular_resolution_x_pixels_per_degree": resolution[0],
            "angular_resolution_y_pixels_per_degree": resolution[1],
        }
    )
    for i, column in enumerate(SHOWN_RECT_COLUMNS):
        frame[column] = shown[:, i]
    return frame, (height, width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--reference-cases", type=int, default=10)
    parser.add_argument("--out", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    readings = [synthetic_reading(rng) for _ in range(args.cases)]
    out_shape = (args.out, args.out)
    fixations, shapes = [r[0] for r in readings], [r[1] for r in readings]

    started = time.perf_counter()
    ours = fixation_heatmaps(fixations, shapes, out_shape, device=args.device).cpu().numpy()
    ours_seconds = time.perf_counter() - started

    started = time.perf_counter()
    reference = [
        per_fixation_heatmap(f, s, out_shape)
        for f, s in zip(fixations[: args.reference_cases], shapes[: args.reference_cases], strict=True)
    ]
    reference_seconds = time.perf_counter() - started
    difference = max(float(np.abs(r - o).max() / r.max()) for r, o in zip(reference, ours, strict=False))

    ours_per_case = ours_seconds / args.cases
    reference_per_case = reference_seconds / len(reference)
    print(
        f"gaze heatmaps: {args.cases} readings, {np.mean([len(f) for f in fixations]):.0f} fixations each, "
        f"images ~{np.mean([s[0] for s in shapes]):.0f}x{np.mean([s[1] for s in shapes]):.0f} -> {args.out}x{args.out}"
    )
    print(f"{'':28s}{'per reading (s)':>18s}{'all readings (s)':>20s}")
    print(
        f"{'reference (per fixation)':28s}{reference_per_case:18.4f}{reference_per_case * args.cases:20.1f}"
        f"   (timed on {len(reference)}, total extrapolated)"
    )
    print(f"{'radgazegen (' + args.device + ')':28s}{ours_per_case:18.4f}{ours_seconds:20.1f}")
    print(f"speed-up: {reference_per_case / ours_per_case:.0f}x   max |difference| / peak: {difference:.2e}")


if __name__ == "__main__":
    main()
