"""Applications: the command line, batch folders, the Ray cluster.

* :mod:`~vsjpegfix.apps.cli` - ``vsjpegfix`` (argument parsing, commands, exit codes).
* :mod:`~vsjpegfix.apps.restore` - restore one file (video or image) with the right engine.
* :mod:`~vsjpegfix.apps.batch` - every file under a folder, resumable.
* :mod:`~vsjpegfix.apps.cluster` - the batch on a Ray cluster.

Layer: top. Nothing below imports from here.
"""
