"""gexbot: a self-hosted GEX levels alerting bot for crypto-options desks."""

from __future__ import annotations

__version__ = "0.1.0"
USER_AGENT = f"gexbot/{__version__} (+https://github.com/gexbot/gexbot)"
