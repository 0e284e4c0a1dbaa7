#!/usr/bin/env python3
"""Classify the action in a video clip with DeepMind's I3D: see `python evaluate.py --help`."""

import sys

from i3d.commands.classify import main

if __name__ == "__main__":
    sys.exit(main())
