"""From decoded frames to model-ready clips: crops and scalings, optical flow, windows.
"""
