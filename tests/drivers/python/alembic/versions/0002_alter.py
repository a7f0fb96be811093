"""Alters the stream table of 0001 in one migration (one transaction): an index on the source,
rows written, and a new defining query (another aggregate, no filter) and schedule for the
stream table, refreshed. (A new column on a source table of a stream table is not followed by
its change capture yet: the second migration does not add one.)

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

QUERY = (
    "SELECT customer, sum(amount) AS total, count(*) AS n, max(amount) AS biggest "
    "FROM al_orders GROUP BY customer"
)
OLD_QUERY = (
    "SELECT customer, sum(amount) AS total, count(*) AS n "
    "FROM al_orders WHERE paid GROUP BY customer"
)
ALTER = (
    "SELECT pgtrickle.alter_stream_table(name => :name, query => :query, schedule => :schedule)"
)


def upgrade():
    op.create_index("al_orders_customer", "al_orders", ["customer"])
    op.get_bind().execute(
        sa.text("UPDATE al_orders SET amount = amount * :factor WHERE id % 2 = 0"), {"factor": 2}
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
    op.drop_index("al_orders_customer", table_name="al_orders")
