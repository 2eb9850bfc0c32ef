"""Token secrets may be stored hashed only; leases for the scheduled prune.

Revision ID: 0003
Revises: 0002

Existing tokens keep their stored secret (so `tokens show` still prints their URL);
`tokens mod NAME --forget-secret` or `tokens rotate NAME` drops it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite rebuilds the table (db.migrate turns foreign keys off around it).
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("secret", existing_type=sa.String(128), nullable=True)
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("until", sa.Float, nullable=False),
        sa.Column("done", sa.Float, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    hashed = op.get_bind().execute(sa.text("SELECT count(*) FROM tokens WHERE secret IS NULL"))
    if hashed.scalar_one():
        raise RuntimeError("cannot downgrade: some tokens have no stored secret "
                           "(the old schema needs one); delete or rotate them first")
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("secret", existing_type=sa.String(128), nullable=False)
