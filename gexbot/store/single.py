"""One process per SQLite database: a second one is refused at start, not left to collide."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import Engine

from gexbot.store.engine import DatabaseError


class InstanceLock:
    """An exclusive, non-blocking `flock` on `<database>.lock`, held for the process lifetime.

    The kernel releases it when the process dies, even on SIGKILL, so a crash never leaves a
    stale lock behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise DatabaseError."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseError(
                f"another gexbot is already running on this SQLite "
                f"database ({self.path.with_suffix('')}); SQLite serves one process. Stop the "
                "other one, or use PostgreSQL to run several."
            ) from None
        self._fd = fd

    def release(self) -> None:
        """Let go (also happens by itself when the process exits)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def sqlite_lock(engine: Engine) -> InstanceLock | None:
    """The lock for a file-backed SQLite engine (None for PostgreSQL or in-memory SQLite)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return InstanceLock(Path(database).resolve().with_name(Path(database).name + ".lock"))
