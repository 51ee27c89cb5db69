"""``python -m lifecycle.cli``: the ``lifecycle`` command."""

import sys

from lifecycle.cli import main

sys.exit(main())
