"""DeepMind's pretrained weights: the sets, their file formats, where they live, and loading them.

``python -m i3d.weights`` runs the ``weights`` command.
"""
