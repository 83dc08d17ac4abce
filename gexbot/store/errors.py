"""The store's own error, importable without loading SQLAlchemy (the command line catches it)."""

from __future__ import annotations


class DatabaseError(Exception):
    """The database cannot be used; the message names GEXBOT_DATABASE_URL, password masked."""
