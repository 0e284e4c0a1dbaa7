"""What people do with I3D: classify a clip or video, extract its features."""
