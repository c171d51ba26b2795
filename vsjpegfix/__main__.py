"""``python -m vsjpegfix`` is the ``vsjpegfix`` command."""

import sys

from .cli import main

sys.exit(main())
