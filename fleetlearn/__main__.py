"""``python -m fleetlearn`` is the ``fleetlearn`` command."""

import sys

from fleetlearn.cli import main

sys.exit(main())
