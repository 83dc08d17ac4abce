"""The schema. Changes only through an Alembic migration in `migrations/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Named constraints make migrations portable (and SQLite batch mode possible).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__(timezone=timezone)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text: store every one the same, naive UTC.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002 - SQLAlchemy's signature
        if value is None:
            return None
        assert isinstance(value, datetime)  # noqa: S101 - the column type guarantees it
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UTC_TS = UTCDateTime()

alert_state = Table(
    "alert_state",
    metadata,
    Column("rule_id", String(64), primary_key=True),
    Column("symbol", String(32), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", UTC_TS),
    Column("baseline", Float),
    Column("last_notified", UTC_TS),
    Column("seq", Integer, nullable=False, default=0),
    Column("last_reason", String(16)),
)

snapshot_last = Table(
    "snapshot_last",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("spot", Float),
    Column("computed_at", UTC_TS),
    Column("received_at", UTC_TS),  # when the bot received it (its clock, not upstream's)
    Column("data", JSON, nullable=False),
)

snapshot_history = Table(
    "snapshot_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(32), nullable=False),
    Column("computed_at", UTC_TS, nullable=False),
    Column("spot", Float),
    Column("data", JSON, nullable=False),
    UniqueConstraint("symbol", "computed_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_key", String(160), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("channel", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("due_at", UTC_TS, nullable=False),
    Column("lease_until", UTC_TS),
    Column("last_error", Text),
    Column("provider_message_id", String(128)),
    Column("created_at", UTC_TS, nullable=False),
    Column("sent_at", UTC_TS),
    UniqueConstraint("alert_key", "seq", "channel"),
    Index("ix_outbox_state_due", "state", "due_at"),
)

mutes = Table(
    "mutes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),  # rule | symbol | alert | all
    Column("target", String(160), nullable=False),  # alert: `rule-id@SYMBOL`
    Column("until", UTC_TS, nullable=False),
    Column("created_by", String(128)),
    Column("created_at", UTC_TS, nullable=False),
    UniqueConstraint("scope", "target"),
)

# The buttons of one delivered alert: a token per outbox row, what it is about, and where the
# message went; a press names the token and the action, and the row decides the rest.
alert_buttons = Table(
    "alert_buttons",
    metadata,
    Column("token", String(32), primary_key=True),
    Column("outbox_id", Integer, nullable=False),
    Column("alert_key", String(160), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # the rule's definition, hashed
    Column("platform", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("created_at", UTC_TS, nullable=False),
    UniqueConstraint("outbox_id"),
    Index("ix_alert_buttons_created", "created_at"),
)

# One row per (button, action) done: a second press, by anyone, on any replica, finds it.
button_presses = Table(
    "button_presses",
    metadata,
    Column("token", String(32), primary_key=True),
    Column("action", String(8), primary_key=True),
    Column("pressed_by", String(128), nullable=False),
    Column("result", String(200), nullable=False),  # the line the message shows
    Column("pressed_at", UTC_TS, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("scope", String(16), nullable=False),  # rule | symbol
    Column("target", String(64), nullable=False),
    Column("created_at", UTC_TS, nullable=False),
    UniqueConstraint("platform", "chat_id", "scope", "target"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

leadership = Table(
    "leadership",
    metadata,
    Column("name", String(32), primary_key=True),  # one row per role; today only "poller"
    Column("holder", String(128), nullable=False),  # GEXBOT_INSTANCE of the current leader
    Column("term", BigInteger, nullable=False),  # the fencing token: +1 at every takeover
    Column("expires_at", UTC_TS, nullable=False),  # database clock, never a replica's
    Column("acquired_at", UTC_TS, nullable=False),
    Column("polled_at", UTC_TS),  # when the leader last asked upstream (database clock)
    # The backend pid of the holder's lease connection: once that session is gone (the process
    # died, or its host stopped answering keepalives) a standby may take over at once.
    Column("holder_session", BigInteger),
)

chat_handled = Table(
    "chat_handled",
    metadata,
    Column("key", String(128), primary_key=True),  # platform:command-id, once across replicas
    Column("handled_at", UTC_TS, nullable=False),
    Column("handled_by", String(128), nullable=False),
)

# Rows are never deleted, only marked: an id is never reused, and `revision` (the value of the
# `personal_alerts` counter in `revisions` at the row's last change) lets the leader load only
# what changed since its last cycle.
personal_alerts = Table(
    "personal_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String(16), nullable=False),  # telegram | slack | discord
    Column("chat_id", String(64), nullable=False),
    Column("owner", String(128), nullable=False),  # the user id that created it
    Column("symbol", String(32), nullable=False),
    Column("condition", String(200), nullable=False),  # canonical words: `crosses hvl band 0.1%`
    Column("options", JSON, nullable=False),  # {"for": s, "cooldown": s, "once": bool}
    Column("created_at", UTC_TS, nullable=False),
    Column("last_fired", UTC_TS),
    Column("paused", String(200)),  # why delivery stopped (blocked, chat gone); NULL: active
    Column("deleted_at", UTC_TS),
    Column("revision", BigInteger, nullable=False),
    Index("ix_personal_alerts_revision", "revision"),
    Index("ix_personal_alerts_chat", "platform", "chat_id"),
    sqlite_autoincrement=True,  # SQLite would otherwise reuse the highest id once deleted
)

# Counters that only grow, one row each (today `personal_alerts`). Each change increments its
# counter in its own transaction; the row lock orders concurrent writers, so the counter and
# the changed rows' revisions follow commit order and a reader misses nothing.
revisions = Table(
    "revisions",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
