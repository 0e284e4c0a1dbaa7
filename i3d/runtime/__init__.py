"""Inference engines: one Runner interface over TensorFlow and OpenVINO."""
