"""``python -m harness.cli``: the ``synthbench`` command."""

import sys

from harness.cli import main

sys.exit(main())
