"""Control maps computed from data: gaze heatmaps (and, later, edges, lungs, radiomic texture)."""
