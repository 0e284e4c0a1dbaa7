"""DeepMind's pretrained weights: the sets, their file formats, where they live, and loading them.
"""
