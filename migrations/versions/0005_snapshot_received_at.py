"""snapshot_last.fetched_at becomes received_at: the bot's clock, named as such

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The column held upstream's meta.timestamp while the leader's memory held its own clock,
    # so standbys and the leader reported different ages. From now on it is when we received it.
    with op.batch_alter_table("snapshot_last", schema=None) as batch_op:
        batch_op.alter_column("fetched_at", new_column_name="received_at")


def downgrade() -> None:
    with op.batch_alter_table("snapshot_last", schema=None) as batch_op:
        batch_op.alter_column("received_at", new_column_name="fetched_at")
