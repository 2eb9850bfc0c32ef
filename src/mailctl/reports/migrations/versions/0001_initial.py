"""Reports, their records, TLS results, failure reports, rejections and fetch state.

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


def _report_fk() -> sa.Column[int]:
    return sa.Column("report", sa.Integer, sa.ForeignKey("reports.id", ondelete="CASCADE"),
                     primary_key=True)


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("reporter", sa.String(255), nullable=False),
        sa.Column("report_id", sa.String(255), nullable=False),
        sa.Column("org", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=False, server_default=""),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("begin", sa.BigInteger, nullable=False),
        sa.Column("end", sa.BigInteger, nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.Column("policy", sa.String(255), nullable=False, server_default=""),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("origin", sa.String(300), nullable=False, server_default=""),
        sa.UniqueConstraint("kind", "reporter", "report_id", name="uq_reports_key"),
    )
    op.create_index("ix_reports_domain_end", "reports", ["domain", "end"])
    op.create_index("ix_reports_end", "reports", ["end"])
    op.create_table(
        "report_records",
        _report_fk(),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("source_ip", sa.String(45), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("dkim", sa.String(8), nullable=False),
        sa.Column("spf", sa.String(8), nullable=False),
        sa.Column("header_from", sa.String(253), nullable=False),
        sa.Column("envelope_from", sa.String(253), nullable=False),
        sa.Column("envelope_to", sa.String(253), nullable=False),
        sa.Column("dkim_auth", sa.String(1000), nullable=False),
        sa.Column("spf_auth", sa.String(1000), nullable=False),
        sa.Column("reasons", sa.String(500), nullable=False),
    )
    op.create_table(
        "report_tls",
        _report_fk(),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("policy_type", sa.String(16), nullable=False),
        sa.Column("policy_domain", sa.String(253), nullable=False),
        sa.Column("mx", sa.String(253), nullable=False),
        sa.Column("result", sa.String(64), nullable=False),
        sa.Column("sessions", sa.Integer, nullable=False),
        sa.Column("sending_ip", sa.String(45), nullable=False),
        sa.Column("receiving_ip", sa.String(45), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
    )
    op.create_table(
        "report_failures",
        _report_fk(),
        sa.Column("source_ip", sa.String(45), nullable=False),
        sa.Column("auth_failure", sa.String(32), nullable=False),
        sa.Column("delivery_result", sa.String(32), nullable=False),
        sa.Column("header_from", sa.String(253), nullable=False),
        sa.Column("envelope_from", sa.String(253), nullable=False),
        sa.Column("dkim_domain", sa.String(253), nullable=False),
        sa.Column("dkim_selector", sa.String(63), nullable=False),
    )
    op.create_table(
        "report_rejections",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("origin", sa.String(300), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_rejections_at", "report_rejections", ["at"])
    op.create_table(
        "report_seen",
        sa.Column("origin", sa.String(300), primary_key=True),
        sa.Column("uidvalidity", sa.BigInteger, primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "report_moves",
        sa.Column("origin", sa.String(300), primary_key=True),
        sa.Column("uidvalidity", sa.BigInteger, primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "report_rdns",
        sa.Column("ip", sa.String(45), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for name in ("report_rdns", "report_moves", "report_seen", "report_rejections",
                 "report_failures", "report_tls", "report_records", "reports"):
        op.drop_table(name)
