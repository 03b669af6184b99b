"""The privacy target: a configuration with anatomical controls that re-draws no patient, measured against text only.

For every configuration of the sample bank, the privacy audit (:mod:`radgazegen.evaluation.protocols.privacy`:
re-identification top-1 / top-5 of every contributing patient and the memorized share, in pixels and the CXR
feature network, plus the re-identification network / RAD-DINO when their local files are given) is printed
side by side with text only (the reference arm) and chance; then the frontier's utility measures and, for each
configuration whose anatomical maps are not the patient's own image, the target's criteria
(:class:`~radgazegen.evaluation.protocols.frontier.Frontier`): re-identification not above text only's in any space,
memorized share at most twice the held-out images' own, at least 70% of the paper configuration's gain over text
only in gaze-placement hit rate and in mean AUROC. Each criterion is a paired interval; the verdict names the
criteria missed. Nothing here changes a metric to make it pass: a miss is printed as a miss.

    python benchmarks/privacy.py [--preset cpu] [--run-dir runs/cpu] [--pipeline-dir DIR] [--reid-weights FILE]
                                 [--rad-dino DIR] [--no-longtail] [--json radgazegen/benchmark_results/privacy_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from radgazegen.evaluation.protocols import PrivacyAudit, QualityEvaluation, placement_protocol, privacy_frontier
from radgazegen.evaluation.protocols.privacy import ANY, TOP1, TOPK
from radgazegen.evaluation.study import open_study, read_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--run-dir", default="")
    parser.add_argument("--pipeline-dir", default="")
    parser.add_argument("--reid-weights", default="")
    parser.add_argument("--rad-dino", default="")
    parser.add_argument("--no-longtail", action="store_true", help="leave the long-tail classifiers out of the frontier")
    parser.add_argument("--json", help="also write the tables here")
    args = parser.parse_args()
    started = time.perf_counter()
    study = open_study(args.preset, args.data_dir, "", args.run_dir, args.pipeline_dir, progress=False)
    print(study.describe(), flush=True)
    try:
        read_table(study.run_dir, "quality")
    except KeyError:  # chapter 5 has not run in this run folder: its table first
        study.save_table("quality", QualityEvaluation(study).table())
    audit = PrivacyAudit(study, reid_weights=args.reid_weights or None, rad_dino=args.rad_dino or None)
    summary = audit.summary().xs(ANY, level="role")
    rows = []
    for (name, space), row in summary.iterrows():
        text = summary.loc[("text", space)]
        rows.append({"configuration": name, "space": space, f"{TOP1}": row[TOP1], f"text {TOP1}": text[TOP1],
                     f"{TOP1} / text": row[TOP1] / text[TOP1] if text[TOP1] > 0 else float("nan"),
                     f"chance {TOP1}": row[f"chance {TOP1}"], TOPK: row[TOPK], f"text {TOPK}": text[TOPK],
                     "memorized": row["memorized"], "held-out share": row["held-out share"]})  # fmt: skip
    side_by_side = pd.DataFrame(rows).set_index(["configuration", "space"])
    found = privacy_frontier(study, audit, placement_protocol(study), longtail=not args.no_longtail)
    targets, verdicts = found.targets(), found.verdicts()
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print("\nRe-identification (any contributor) beside text only and chance:\n", side_by_side.round(3))
        print("\nThe frontier:\n", found.table.drop(columns=["label"]).round(3))
        print("\nThe target's criteria:\n", targets.round(3))
    print("\nVerdicts:\n" + "\n".join(f"  {name}: {verdict}" for name, verdict in verdicts.items()))
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.json:
        tables = {"reidentification": side_by_side.reset_index(), "frontier": found.table.reset_index(),
                  "targets": targets.reset_index()}  # fmt: skip
        payload = {name: json.loads(table.to_json(orient="records")) for name, table in tables.items()}
        payload |= {"verdicts": verdicts.to_dict(), "preset": study.preset.name, "date": time.strftime("%Y-%m-%d"),
                    "run": study.describe()}  # fmt: skip
        with open(args.json, "w") as handle:
            json.dump(payload, handle, indent=1)


if __name__ == "__main__":
    main()
