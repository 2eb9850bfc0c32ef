"""Rate-limit state shared by every API worker and host.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per client that is not at full burst: its GCRA "theoretical arrival time".
    # The key is an HMAC of the address, never the address itself.
    op.create_table(
        "rate_limits",
        sa.Column("client_key", sa.String(64), primary_key=True),
        sa.Column("tat", sa.Float, nullable=False),
        sa.Column("seen", sa.Float, nullable=False),
        sa.Column("allowed", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_rate_limits_tat", "rate_limits", ["tat"])
    op.create_table(
        "store_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    meta = sa.table("store_meta", sa.column("name", sa.String), sa.column("value", sa.String))
    op.bulk_insert(meta, [{"name": "rate_limit_salt", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("store_meta")
    op.drop_table("rate_limits")
