"""``python -m i3d.weights``: the same as ``python -m i3d weights``."""

import sys

from i3d.commands.weights import main

sys.exit(main(prog="python -m i3d.weights"))
