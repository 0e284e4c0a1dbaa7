"""From decoded frames to model-ready clips: crops and scalings, optical flow, windows.

``python -m i3d.preprocess`` runs the ``preprocess`` command.
"""
