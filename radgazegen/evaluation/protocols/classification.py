"""The CheXpert table: AUROC per finding for classifiers trained on real, real + generated and generated-only
images, and the claim that generated images raise it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from radgazegen.evaluation.claims import HIGHER, Claim
from radgazegen.evaluation.classify import auroc_table, mean_auroc
from radgazegen.evaluation.stats import bootstrap
from radgazegen.evaluation.study import Study


def augmented_classifier(study: Study, configuration: str):
    """The classifier trained on the real training readings plus every sample of ``configuration`` (labelled with its
    prompt's findings), trained once and cached as arm ``real+<configuration>``."""
    generated, labels = study.generated_training_set(configuration)
    return study.classifier(f"real+{configuration}", np.concatenate([study.train.images, generated]),
                            np.concatenate([study.train.labels, labels]))  # fmt: skip


def _classification_arms(study: Study, configuration: str) -> dict:
    """The three training arms of the CheXpert protocol, trained once and cached."""
    generated, labels = study.generated_training_set(configuration)
    return {
        "real": study.reference_classifier,
        "real + generated": augmented_classifier(study, configuration),
        "generated only": study.classifier(f"{configuration}-only", generated, labels),
    }


def classification_table(study: Study, configuration: str = "both") -> pd.DataFrame:
    """AUROC per finding (and the mean) on the held-out real test set for three training arms.

    Arms: ``real`` (the real training readings), ``real + generated`` (plus every sample of
    ``configuration``, labelled with its prompt's findings), ``generated only``.
    """
    tables = []
    for arm, classifier in _classification_arms(study, configuration).items():
        scores = classifier.predict(study.test.images)
        table = auroc_table(study.test.labels, scores, study.train.classes, n_boot=study.settings.bootstrap,
                            seed=study.preset.seed)  # fmt: skip
        tables.append(table.assign(arm=arm))
    return pd.concat(tables).rename_axis("finding").reset_index().set_index(["arm", "finding"])


def classification_claims(study: Study, configuration: str = "both") -> list[Claim]:
    """The CheXpert claim: mean AUROC of real + generated minus real, paired over the same test images."""
    arms = _classification_arms(study, configuration)
    augmented, real = (arms[arm].predict(study.test.images) for arm in ("real + generated", "real"))
    estimate = bootstrap(lambda y, a, b: mean_auroc(y, a) - mean_auroc(y, b), study.test.labels, augmented, real,
                         n_boot=study.settings.bootstrap, seed=study.preset.seed)  # fmt: skip
    return [Claim("classification", "training with generated images raises the classifier's AUROC", "mean AUROC",
                  "real + generated", "real", HIGHER, estimate,
                  f"paired bootstrap over {len(study.test)} test images ({study.settings.bootstrap})")]  # fmt: skip
