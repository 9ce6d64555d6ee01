#!/usr/bin/env python
"""Serve the dashboard: the same as `sweeper dashboard` (flags and all), for a checkout without the entry point.

    .venv/bin/python dashboards/app.py [--storage URL] [--host 127.0.0.1] [--port 8050] [--token T]
"""

import sys

from sweeper.cli import main

if __name__ == "__main__":
    sys.exit(main(["dashboard", *sys.argv[1:]]))
