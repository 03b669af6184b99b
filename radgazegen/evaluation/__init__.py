"""Evaluations of generated images: control adherence (more follow with the evaluation chapters)."""
