"""pytest configuration for the shipped hypotheses.

``examples/fails-on-purpose/`` holds claims that fail on purpose, to show what a failure looks
like. It is left out when a parent folder is collected (``headprobe check`` or
``headprobe check hypotheses``), so the default run passes; naming it runs it:
``headprobe check hypotheses/examples/fails-on-purpose``.
"""

collect_ignore = ["examples/fails-on-purpose"]
