"""``python -m stochctl.cli``: the ``stochctl`` command."""

import sys

from . import main

sys.exit(main())
