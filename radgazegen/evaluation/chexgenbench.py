"""A configuration's samples in CheXGenBench's layout, for its fidelity and privacy scripts.

CheXGenBench (Dutt et al. 2025) reads synthetic images from a folder and a CSV whose ``img_savename`` column names
each image (relative to ``--synthetic_img_dir``) and whose prompt column holds the text it was generated from; it
opens them with PIL as RGB. :func:`export_samples` writes every sample of a bank configuration as an 8-bit grey PNG
and ``prompt_INFO.csv`` (``prompt``, ``img_savename``, then ours: ``reading``, ``copy``, ``configuration``,
``anatomy`` and ``own_patient_controls``). A configuration steered by maps from the prompt's patient's own image
(Rad-CN maps as they are) is labelled ``own_patient_controls=True`` on every row: its fidelity and privacy numbers
are not comparable with a text-to-image model's, whose samples see nothing of a test patient but the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from PIL import Image

from radgazegen.data.images import grey_levels8
from radgazegen.evaluation.bank import Samples
from radgazegen.io import atomic_dir

PROMPTS_FILE = "prompt_INFO.csv"
COLUMNS = ("prompt", "img_savename", "reading", "copy", "configuration", "anatomy", "own_patient_controls")


def export_samples(samples: Samples, prompts: Mapping[str, str], out: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``samples`` (one 8-bit PNG each) and :data:`PROMPTS_FILE` to ``out``, atomically (module docstring).

    ``prompts``: each reading's prompt. An existing ``out`` is replaced only with ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass overwrite=True (--overwrite) to replace it")
    missing = sorted({reading for reading in samples.ids if reading not in prompts})
    if missing:
        raise ValueError(f"no prompt for reading(s) {missing[:5]} of configuration {samples.configuration.name!r}")
    configuration = samples.configuration
    rows = []
    with atomic_dir(out) as staging:
        for image, reading, copy in zip(samples.images, samples.ids, samples.copy, strict=True):
            name = f"{reading}.png" if copy == 0 else f"{reading}_{int(copy)}.png"
            Image.fromarray(grey_levels8(image)).save(staging / name, format="PNG")
            rows.append((prompts[reading], name, reading, int(copy), configuration.name, configuration.anatomy,
                         configuration.uses_own_image))  # fmt: skip
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(staging / PROMPTS_FILE, index=False)
    return out
