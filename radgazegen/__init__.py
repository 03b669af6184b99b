"""RadGazeGen: chest X-ray synthesis steered by radiologists' gaze and radiomic feature maps."""

__version__ = "0.1.0"
