"""The generator: base UNet, ControlNets (multi / fused), text encoders, training and the sampling pipeline."""

from radgazegen.models.pipeline import PAPER_NEGATIVE_PROMPT, PAPER_SCALES, RadGazeGenOutput, RadGazeGenPipeline

__all__ = ["PAPER_NEGATIVE_PROMPT", "PAPER_SCALES", "RadGazeGenOutput", "RadGazeGenPipeline"]
