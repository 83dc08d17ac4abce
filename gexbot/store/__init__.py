"""Persistence (SQLAlchemy 2 Core): functions take a connection and never commit.

The loops own transactions: one `engine.begin()` per cycle, so state transitions, the new
snapshot and the outbox rows land together or not at all. Sync SQLAlchemy on purpose: SQLite
calls are sub-millisecond, PostgreSQL calls run in a worker thread (`asyncio.to_thread`), and
the same code serves the bot, the CLI and the benchmarks.
"""
