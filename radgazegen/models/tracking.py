"""The per-step training log as an accelerate tracker: ``accelerator.log`` writes it, beside any other tracker.

accelerate's trackers (TensorBoard, Weights & Biases, ...) keep their own formats; the training folder's
``log.jsonl`` is what resuming, the curves and the shipped manifest read, so it is one more tracker rather than
code beside them (accelerate has no JSON-lines tracker).
"""

from __future__ import annotations

import json
from pathlib import Path

from accelerate.tracking import GeneralTracker


class StepLogTracker(GeneralTracker):
    """Appends ``{"step": step, **values}`` as one JSON line per ``log`` call to ``path``."""

    name = "steplog"
    requires_logging_directory = False

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    @property
    def tracker(self) -> Path:
        """The log file (accelerate's handle on a tracker's run)."""
        return self.path

    def store_init_configuration(self, values: dict) -> None:
        """The run's settings are in the run manifest; nothing to store here."""

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        """Append one line: the step, then ``values`` (loss, learning rate, seconds)."""
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **values}) + "\n")
