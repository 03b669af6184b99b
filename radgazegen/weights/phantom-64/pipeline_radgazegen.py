"""Lets diffusers' DiffusionPipeline.from_pretrained find the RadGazeGen pipeline class."""

from radgazegen.models.pipeline import RadGazeGenPipeline  # noqa: F401
