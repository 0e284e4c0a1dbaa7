"""Where each action starts and ends: window scores cut into segments, the run over a dataset, and
ActivityNet's mAP evaluation of the result."""
