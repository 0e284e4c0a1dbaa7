"""``python -m i3d <command>``: see :mod:`i3d.commands`."""

import sys

from i3d.commands import main

sys.exit(main())
