"""Alters the source table and the stream table of 0001 in one migration (one transaction):
a new column, rows that use it, and a new defining query and schedule for the stream table.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

QUERY = (
    "SELECT customer, region, sum(amount) AS total, count(*) AS n "
    "FROM al_orders WHERE paid GROUP BY customer, region"
)
OLD_QUERY = (
    "SELECT customer, sum(amount) AS total, count(*) AS n "
    "FROM al_orders WHERE paid GROUP BY customer"
)
ALTER = (
    "SELECT pgtrickle.alter_stream_table(name => :name, query => :query, schedule => :schedule)"
)


def upgrade():
    op.add_column("al_orders", sa.Column("region", sa.Text, server_default="north"))
    op.get_bind().execute(
        sa.text("UPDATE al_orders SET region = :region WHERE id % 2 = 0"), {"region": "south"}
    )
    op.get_bind().execute(
        sa.text(ALTER), {"name": "al_totals", "query": QUERY, "schedule": "30m"}
    )
    op.get_bind().execute(
        sa.text("SELECT pgtrickle.refresh_stream_table(:name)"), {"name": "al_totals"}
    )


def downgrade():
    op.get_bind().execute(
        sa.text(ALTER), {"name": "al_totals", "query": OLD_QUERY, "schedule": "1h"}
    )
    op.drop_column("al_orders", "region")
