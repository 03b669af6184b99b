"""The ablation table: every configuration at an equal sampling budget, side by side."""

from __future__ import annotations

import pandas as pd

from radgazegen.evaluation.classify import auroc_table
from radgazegen.evaluation.protocols.classification import augmented_classifier
from radgazegen.evaluation.study import Study


def ablation_table(study: Study, quality: pd.DataFrame, adherence: pd.DataFrame) -> pd.DataFrame:
    """Every configuration at an equal sampling budget: quality, diversity, adherence and downstream mean AUROC."""
    rows = {}
    for configuration in study.configurations:
        name = configuration.name
        scores = augmented_classifier(study, name).predict(study.test.images)
        mean = auroc_table(study.test.labels, scores, study.train.classes, n_boot=study.settings.bootstrap,
                           seed=study.preset.seed).loc["mean"]  # fmt: skip
        row = {"configuration": configuration.label, "controls": ", ".join(configuration.controls) or "-"}
        for column in ("FRD", "FID (CXR)", "MS-SSIM", "agreement AUROC"):
            if column in quality.columns:
                row[column] = quality.loc[name, column]
        for (control, metric), value in adherence[name].items():
            row[f"{control} {metric}"] = value
        row["AUROC real + generated"] = mean["auroc"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("name")
