#!/usr/bin/env bash
# The recipe of the shipped phantom checkpoint radgazegen/weights/phantom-64 (preset `shipped`: the `cpu` model on 600 phantom
# readings, base 1200 steps, each ControlNet 300, weight snapshots every 100 for the curves).
# Every step resumes from its latest checkpoint: re-run after an interruption.
# RUN (default runs/shipped) holds the data, checkpoints and snapshots; DEVICE: cpu, cuda or auto.
set -euo pipefail
RUN=${RUN:-runs/shipped}
DEVICE=${DEVICE:-auto}
R="--preset shipped --data $RUN/dataset --run-dir $RUN --device $DEVICE"
[ -f "$RUN/dataset/phantom/manifest.json" ] || radgazegen data phantom --out "$RUN/dataset" --n 600 --seed 100
radgazegen controls $R --controls canny lungs gaze gaze_findings texture:glcm_Contrast
radgazegen train $R --stage base
for control in gaze_findings gaze canny lungs texture:glcm_Contrast; do
  radgazegen train $R --stage controlnet --controls "$control"
done
radgazegen train $R --stage controlnet --mode fused --controls canny lungs gaze_findings texture:glcm_Contrast
radgazegen ship $R --out radgazegen/weights/phantom-64 --recipe radgazegen/weights/train-phantom-64.sh
