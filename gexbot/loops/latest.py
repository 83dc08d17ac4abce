"""The newest levels a replica can show (chat replies, the console, the chart cache)."""

from __future__ import annotations

from sqlalchemy import Engine

from gexbot.core.market.snapshot import BundleSnapshot
from gexbot.loops.leadership import Leadership
from gexbot.store.snapshots import load_last_bundle


class LatestLevels:
    """This process's last poll when it leads, else the leader's last stored snapshot
    (standbys do not poll)."""

    def __init__(self, engine: Engine, leadership: Leadership) -> None:
        self._engine = engine
        self._leadership = leadership
        self.bundle: BundleSnapshot | None = None  # this process's last good poll

    def record(self, bundle: BundleSnapshot) -> None:
        """Remember a good poll."""
        self.bundle = bundle

    def __call__(self) -> BundleSnapshot | None:
        """The newest bundle this replica can see."""
        if self._leadership.is_leader() and self.bundle is not None:
            return self.bundle
        with self._engine.connect() as conn:
            return load_last_bundle(conn) or self.bundle
