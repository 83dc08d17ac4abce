"""`python -m gexbot` runs the same CLI as the `gexbot` console script."""

from __future__ import annotations

from gexbot.cli import main

# Guarded: the chart renderer is a spawned process, which imports this module again.
if __name__ == "__main__":
    raise SystemExit(main())
