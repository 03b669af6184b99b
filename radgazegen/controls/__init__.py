"""Control maps computed from data: gaze heatmaps, edge filters, lung masks and voxel-wise radiomic texture.

:mod:`~radgazegen.controls.registry` names them and turns them into the [0, 1] maps the ControlNets see;
:mod:`~radgazegen.controls.extract` computes them for a whole data set into a run directory.
"""
