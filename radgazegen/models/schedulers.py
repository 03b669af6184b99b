"""The samplers a pipeline can switch between, and loading a saved scheduler."""

from __future__ import annotations

from pathlib import Path

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, SchedulerMixin, UniPCMultistepScheduler

from radgazegen.errors import MissingWeightsError
from radgazegen.io import read_json

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "unipc": UniPCMultistepScheduler,  # the paper's sampler
    "ddim": DDIMScheduler,
    "dpm": DPMSolverMultistepScheduler,
}


def scheduler_named(name: str, config) -> SchedulerMixin:
    """The sampler ``name`` (see :data:`SCHEDULERS`) built from a scheduler configuration."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
    return SCHEDULERS[name].from_config(config)


def load_scheduler(folder: Path, name: str | None) -> SchedulerMixin:
    """The scheduler saved in ``folder``: ``name`` (see :data:`SCHEDULERS`) built from its configuration, or its own
    class when ``name`` is ``None``."""
    path = folder / "scheduler_config.json"
    if not path.is_file():
        raise MissingWeightsError(f"{folder}: missing scheduler_config.json")
    config = read_json(path, required=("_class_name",))
    if name is not None:
        return scheduler_named(name, config)
    import diffusers

    return getattr(diffusers, config["_class_name"]).from_config(config)
