"""personal alerts created from chat, and the revision counters that announce their changes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gexbot.store.tables import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "personal_alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("condition", sa.String(200), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_fired", _TS),
        sa.Column("paused", sa.String(200)),
        sa.Column("deleted_at", _TS),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_alerts")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_personal_alerts_revision", "personal_alerts", ["revision"])
    op.create_index("ix_personal_alerts_chat", "personal_alerts", ["platform", "chat_id"])
    op.create_table(
        "revisions",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_revisions")),
    )


def downgrade() -> None:
    op.drop_table("revisions")
    op.drop_index("ix_personal_alerts_chat", table_name="personal_alerts")
    op.drop_index("ix_personal_alerts_revision", table_name="personal_alerts")
    op.drop_table("personal_alerts")
