"""``python -m vsjpegfix`` is the ``vsjpegfix`` command."""

import sys

from vsjpegfix.apps.cli import main

sys.exit(main())
