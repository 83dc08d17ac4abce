"""The store's own error, importable without loading SQLAlchemy (the command line catches it)."""

from __future__ import annotations


class DatabaseError(Exception):
    """The database cannot be used; the message says why, password masked (the composition
    root prefixes the setting's name)."""


class NoSchema(DatabaseError):
    """The database holds no gexbot schema yet: nothing was ever stored in it."""
