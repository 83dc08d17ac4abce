"""buttons on alerts: a token per delivered alert, the presses done, and mutes of one rule for
one symbol (a longer mute target)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 01:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gexbot.store.tables import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_buttons",
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("alert_key", sa.String(160), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_alert_buttons")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_alert_buttons_outbox_id")),
    )
    op.create_index("ix_alert_buttons_created", "alert_buttons", ["created_at"])
    op.create_table(
        "button_presses",
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("pressed_by", sa.String(128), nullable=False),
        sa.Column("result", sa.String(200), nullable=False),
        sa.Column("pressed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("token", "action", name=op.f("pk_button_presses")),
    )
    with op.batch_alter_table("mutes") as batch:
        batch.alter_column(
            "target", existing_type=sa.String(64), type_=sa.String(160), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mutes") as batch:
        batch.alter_column(
            "target", existing_type=sa.String(160), type_=sa.String(64), existing_nullable=False
        )
    op.drop_table("button_presses")
    op.drop_index("ix_alert_buttons_created", table_name="alert_buttons")
    op.drop_table("alert_buttons")
