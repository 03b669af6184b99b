"""The attribution table: where the real-trained classifier looks on real and generated images, against the
gaze heatmap and the ground-truth finding masks."""

from __future__ import annotations

import pandas as pd

from radgazegen.controls.extract import extract_controls, stacked_controls
from radgazegen.evaluation.attribution import attribution_agreement, grad_cam, integrated_gradients
from radgazegen.evaluation.classify import resize
from radgazegen.evaluation.protocols.truth import truth_masks
from radgazegen.evaluation.study import Study


def attribution_table(study: Study, configuration: str = "both", method: str = "integrated gradients"):
    """Attributions of the real-trained classifier on held-out real images and on generated ones.

    Each image is explained for its most probable finding; the map is scored against the reading's
    gaze heatmap and its ground-truth finding mask (phantom) with NSS, CC and AUC-Judd. Returns the
    per-image table and the maps ``{"real": (images, attributions, gaze), "generated": (...)}``.
    """
    # the reference is the whole reading's gaze, whichever gaze map the generator's HVA-CN takes
    extract_controls(study.dataset, ["gaze"], study.run_dir, study.pipe.registry.settings, progress=False)
    classifier = study.reference_classifier
    classifier.model.eval()
    sets = {"real": (study.held_out.ids, study.held_out.images)}
    ids, images = study.samples(configuration).first()
    sets["generated"] = (ids, images)
    tables, maps = [], {}
    for name, (case_ids, batch) in sets.items():
        gaze = stacked_controls(study.run_dir, case_ids, ["gaze"], study.pipe.registry)["gaze"]
        masks = truth_masks(study, case_ids)
        tensor = classifier.inputs(batch)
        target = classifier.predict(batch).argmax(1).tolist()
        if method == "grad-cam":
            attributions = grad_cam(classifier.model, classifier.cam_layer, tensor, target)
        else:
            attributions = integrated_gradients(classifier.model, tensor, target)
        size = attributions.shape[-1]
        table = attribution_agreement(attributions, resize(gaze, size)[:, 0].numpy(),
                                      None if masks is None else resize(masks, size)[:, 0].numpy() >= 0.5)  # fmt: skip
        tables.append(table.assign(images=name, method=method))
        peak = attributions.reshape(len(attributions), -1).max(1).clip(min=1e-12)[:, None, None]
        maps[name] = (batch, attributions / peak, gaze)  # scaled to [0, 1] per image for display
    return pd.concat(tables, ignore_index=True), maps
