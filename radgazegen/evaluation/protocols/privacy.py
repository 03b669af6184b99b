"""The privacy audit: does each configuration's sample re-draw the patients whose data conditioned it?

Every configuration of the sample bank is audited on the same conditioning readings (the first sample of each;
:mod:`radgazegen.evaluation.privacy` defines the measures). The gallery is every real training image (donors are
training readings, so they are in it); the held-out reference is the main data set's validation and test readings,
and for the phantom also the held-out phantom test cohort (the same generator, another seed). Spaces:

* ``pixels``: Pearson correlation of the pixels;
* ``CXR features``: cosine similarity of the project's feature network (the DenseNet of chapter 5's FID, trained on
  the training readings that condition no sample, so it never saw a conditioning reading's image);
* ``re-identification network``: CheXGenBench's Siamese ResNet-50 (:mod:`~radgazegen.evaluation.reidentification`),
  when the user passes its checkpoint as a local file;
* ``RAD-DINO``: cosine similarity of RAD-DINO's CLS embedding, when the user passes its folder.

Each sample's contributors are read at three *roles*: ``report`` (the reading whose report is the prompt and whose
gaze steered it), ``donor`` (the reading that lent its anatomy, donor configurations only) and ``any`` (either). The
claims pair every configuration with text only reading by reading: text only, conditioned on the report alone, is
the privacy baseline (a report narrows the candidates, so it is not at chance either).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from radgazegen.data.phantom.truth import has_ground_truth
from radgazegen.evaluation.claims import LOWER, Claim
from radgazegen.evaluation.privacy import (
    QUANTILE,
    TOP_K,
    cosine_similarity,
    memorized,
    nearest_distance,
    own_share,
    pixel_similarity,
    reidentification,
)
from radgazegen.evaluation.stats import Estimate, bootstrap
from radgazegen.evaluation.study import Study

PIXELS, FEATURES, REID_NETWORK, RAD_DINO = "pixels", "CXR features", "re-identification network", "RAD-DINO"
REPORT, DONOR, ANY = "report", "donor", "any"
TOP1, TOPK = "top-1", f"top-{TOP_K}"
CLAIM = "the images are new patients, not copies of the patients whose data conditioned them"


@dataclass(frozen=True)
class Space:
    """A similarity space: ``embed`` maps grey images ``(n, S, S)`` to a representation, ``similarity`` compares two."""

    name: str
    label: str
    embed: Callable[[np.ndarray], np.ndarray]
    similarity: Callable[[np.ndarray, np.ndarray], np.ndarray]


def audit_spaces(study: Study, *, reid_weights: str | Path | None = None, rad_dino: str | Path | None = None) -> list[Space]:
    """The spaces of the audit: pixels and the project's feature network always, the others when their files are given."""
    spaces = [Space(PIXELS, "Pearson correlation of the pixels", np.asarray, pixel_similarity),
              Space(FEATURES, "cosine of the CXR feature network (never saw a conditioning image)",
                    study.feature_classifier.features, cosine_similarity)]  # fmt: skip
    if reid_weights:
        from radgazegen.evaluation.reidentification import SiameseReidentifier

        network = SiameseReidentifier(reid_weights, device=study.device)
        spaces.append(Space(REID_NETWORK, "one-patient probability of CheXGenBench's Siamese ResNet-50",
                            network.embed, network.similarity))  # fmt: skip
    if rad_dino:
        from radgazegen.evaluation.quality import RadDinoFeatures

        spaces.append(Space(RAD_DINO, "cosine of RAD-DINO's CLS embedding", RadDinoFeatures(rad_dino, device=study.device),
                            cosine_similarity))  # fmt: skip
    return spaces


class PrivacyAudit:
    """The audit of every configuration (or ``configurations``) of a study, in every :func:`audit_spaces` space.

    :attr:`scores`: one row per configuration, reading, space and role with the columns of
    :func:`~radgazegen.evaluation.privacy.reidentification` plus ``nearest distance`` and ``memorized``;
    :meth:`summary` the rates with 95% intervals, :meth:`claims` the paired differences against text only,
    :meth:`worst_cases` the samples nearest their contributors.
    """

    def __init__(self, study: Study, *, reid_weights: str | Path | None = None, rad_dino: str | Path | None = None,
                 configurations: Sequence[str] | None = None) -> None:  # fmt: skip
        self.study = study
        self.spaces = audit_spaces(study, reid_weights=reid_weights, rad_dino=rad_dino)
        self.gallery = study.train
        patient = {case.id: case.subject_id or case.id for case in study.dataset}
        self.patients = [patient[i] for i in self.gallery.ids]
        in_gallery = set(self.gallery.ids)  # a data set too small for held-out splits lends training readings
        held = [study.held_out.images[[k for k, i in enumerate(study.held_out.ids) if i not in in_gallery]]]
        if has_ground_truth(study.dataset.root):
            held.append(study.test.images)  # the held-out phantom: the same generator, another seed
        self.held_images = np.concatenate(held)
        if len(self.held_images) < 3:
            raise ValueError(f"{study.dataset.root}: the privacy audit needs at least 3 held-out real images (the "
                             f"data set's validate / test readings), found {len(self.held_images)}")  # fmt: skip
        self.samples = {c.name: study.samples(c.name) for c in study.configurations
                        if configurations is None or c.name in configurations}  # fmt: skip
        self.gallery_embedded = {space.name: space.embed(self.gallery.images) for space in self.spaces}
        self.held_distance = {space.name: nearest_distance(space.similarity(space.embed(self.held_images),
                                                                            self.gallery_embedded[space.name]))
                              for space in self.spaces}  # fmt: skip
        parts = []
        for name, samples in self.samples.items():
            rows = np.flatnonzero(samples.copy == 0)
            reports = [{patient[samples.ids[i]]} for i in rows]
            donors = [{patient[samples.donors[i]]} if samples.donors[i] else set() for i in rows]
            roles = {REPORT: reports, ANY: [r | d for r, d in zip(reports, donors, strict=True)]}
            if any(donors):
                roles[DONOR] = donors
            for space in self.spaces:
                similarity = space.similarity(space.embed(samples.images[rows]), self.gallery_embedded[space.name])
                distance = nearest_distance(similarity)
                flagged = memorized(distance, self.held_distance[space.name])
                for role, contributors in roles.items():
                    table = reidentification(similarity, self.patients, contributors)
                    parts.append(table.assign(configuration=name, reading=[samples.ids[i] for i in rows],
                                              space=space.name, role=role, **{"nearest distance": distance,
                                                                              "memorized": flagged}))  # fmt: skip
        self.scores = pd.concat(parts, ignore_index=True)

    # -- per configuration ---------------------------------------------------------------------------
    def rows(self, configuration: str, space: str, role: str = ANY) -> pd.DataFrame:
        """The per-reading scores of one configuration, space and role, in the conditioning readings' order."""
        found = self.scores[(self.scores["configuration"] == configuration) & (self.scores["space"] == space)
                            & (self.scores["role"] == role)]  # fmt: skip
        if found.empty:
            raise KeyError(f"no scores for configuration {configuration!r}, space {space!r}, role {role!r}")
        return found.reset_index(drop=True)

    def held_out_share(self, space: str) -> np.ndarray:
        """0/1 per held-out real image: nearer the gallery than the 5% quantile of the other held-out images."""
        return own_share(self.held_distance[space], QUANTILE)

    def summary(self) -> pd.DataFrame:
        """Per configuration, space and role: re-identification top-1 / top-5 and their chance, the memorized share
        and the held-out images' own share, the median source margin; 95% bootstrap intervals over readings."""
        boot, seed = self.study.settings.bootstrap, self.study.preset.seed
        held = {space.name: bootstrap(np.mean, self.held_out_share(space.name), n_boot=boot, seed=seed)
                for space in self.spaces}  # fmt: skip
        records = []
        for (name, space, role), rows in self.scores.groupby(["configuration", "space", "role"], sort=False):
            record: dict[str, object] = {"configuration": name, "space": space, "role": role, "readings": len(rows)}
            for metric in (TOP1, TOPK, "memorized"):
                record |= bootstrap(np.mean, rows[metric].to_numpy(), n_boot=boot, seed=seed).columns(metric)
            record |= {f"chance {TOP1}": rows[f"chance {TOP1}"].mean(), f"chance {TOPK}": rows[f"chance {TOPK}"].mean()}
            record |= held[space].columns("held-out share")
            record["median margin"] = float(np.nanmedian(rows["margin"]))
            records.append(record)
        return pd.DataFrame(records).set_index(["configuration", "space", "role"])

    def difference(self, metric: str, first: str, second: str, space: str, *, first_role: str = ANY,
                   second_role: str = REPORT) -> Estimate:  # fmt: skip
        """``metric`` of ``first`` minus ``second``, paired over the conditioning readings, with a bootstrap interval."""
        a, b = self.rows(first, space, first_role), self.rows(second, space, second_role)
        if a["reading"].tolist() != b["reading"].tolist():
            raise ValueError(f"configurations {first!r} and {second!r} were not sampled on the same readings")
        return bootstrap(np.mean, (a[metric] - b[metric]).to_numpy(), n_boot=self.study.settings.bootstrap,
                         seed=self.study.preset.seed)  # fmt: skip

    def memorized_excess(self, configuration: str, space: str, times: float = 2.0) -> Estimate:
        """The memorized share minus ``times`` the held-out images' own share (two independent samples, resampled
        together): at most 0 when the configuration's samples are no nearer the training images than ``times`` as
        often as new real images are."""
        flagged, own = self.rows(configuration, space)["memorized"].to_numpy(), self.held_out_share(space)
        rng = np.random.default_rng(self.study.preset.seed)
        value = flagged.mean() - times * own.mean()
        replicates = [rng.choice(flagged, len(flagged)).mean() - times * rng.choice(own, len(own)).mean()
                      for _ in range(self.study.settings.bootstrap)]  # fmt: skip
        low, high = np.quantile(replicates, [0.025, 0.975])
        return Estimate(float(value), float(low), float(high), len(flagged))

    def claims(self, baseline: str = "text") -> list[Claim]:
        """Every configuration against text only, per space: re-identification (top-1, any contributor) and the
        memorized share, paired over the conditioning readings; lower is better (the claim holds when the images
        re-identify their patients *less* than text only; not supported when more)."""
        boot = self.study.settings.bootstrap
        found = []
        for name in self.samples:
            if name == baseline:
                continue
            for space in self.spaces:
                n = len(self.rows(name, space.name))
                for metric, label in ((TOP1, f"re-identified ({TOP1}, {space.name})"),
                                      ("memorized", f"memorized share ({space.name})")):  # fmt: skip
                    found.append(Claim("privacy", CLAIM, label, name, baseline, LOWER,
                                       self.difference(metric, name, baseline, space.name),
                                       f"paired bootstrap over {n} readings ({boot})"))  # fmt: skip
        return found

    def worst_cases(self, configuration: str, space: str = PIXELS, n: int = 4) -> list[dict]:
        """The ``n`` samples of ``configuration`` nearest their contributors (smallest source margin): each with the
        sample, its nearest training image and each contributor's nearest image, and their similarities."""
        rows = self.rows(configuration, space).sort_values("margin").head(n)
        samples = self.samples[configuration]
        first = {samples.ids[i]: i for i in np.flatnonzero(samples.copy == 0)}
        found = []
        for _, row in rows.iterrows():
            i = first[row["reading"]]
            panel = {"reading": row["reading"], "sample": samples.images[i],
                     "nearest": self.gallery.images[int(row["nearest"])],
                     "nearest is a contributor": bool(row[TOP1]), "margin": float(row["margin"]),
                     "contributors": {}}  # fmt: skip
            for role, reading in ((REPORT, samples.ids[i]), (DONOR, samples.donors[i])):
                if reading and reading in self.gallery.ids:
                    panel["contributors"][role] = self.gallery.images[self.gallery.ids.index(reading)]
            found.append(panel)
        return found
