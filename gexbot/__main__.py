"""`python -m gexbot` runs the same CLI as the `gexbot` console script."""

from __future__ import annotations

from gexbot.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
