"""``python -m qlandscape``: the ``qlandscape`` command."""

import sys

from qlandscape.cli.app import main

sys.exit(main())
