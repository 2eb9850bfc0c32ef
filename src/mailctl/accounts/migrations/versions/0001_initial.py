"""Tokens and accounts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False, server_default=""),
        sa.Column("expiry", sa.String(16), nullable=False),
        sa.Column("maxuse", sa.Integer, nullable=False),
        sa.Column("usecount", sa.Integer, nullable=False, server_default="0"),
        sa.Column("valid_until", sa.Integer, nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created", sa.Integer, nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(320), nullable=False, unique=True),
        sa.Column("token_id", sa.Integer,
                  sa.ForeignKey("tokens.id", ondelete="SET NULL"), nullable=True),
        sa.Column("token_name", sa.String(64), nullable=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("created", sa.Integer, nullable=False),
        sa.Column("expires", sa.Integer, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_index("ix_accounts_expires", "accounts", ["expires"])
    op.create_index("ix_accounts_token", "accounts", ["token_id"])
    op.create_index("ix_accounts_state", "accounts", ["state"])


def downgrade() -> None:
    op.drop_table("accounts")
    op.drop_table("tokens")
