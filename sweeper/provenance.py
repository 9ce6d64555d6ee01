"""Where a result came from: the code version every stored row carries."""

from __future__ import annotations

import functools
import os
import subprocess


@functools.cache
def code_version() -> str:
    """The package version, plus `git describe --always --dirty` when the code runs from a checkout.

    Cached per process: a worker stores it on every member row.
    """
    import sweeper

    here = os.path.dirname(os.path.abspath(sweeper.__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{sweeper.__version__}+{rev}" if rev else sweeper.__version__
