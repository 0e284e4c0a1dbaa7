"""``python -m i3d.preprocess``: the same as ``python -m i3d preprocess``."""

import sys

from i3d.commands.preprocess import main

sys.exit(main(prog="python -m i3d.preprocess"))
