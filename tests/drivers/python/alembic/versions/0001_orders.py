"""A source table and a stream table over it, created in one migration (one transaction).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

QUERY = (
    "SELECT customer, sum(amount) AS total, count(*) AS n "
    "FROM al_orders WHERE paid GROUP BY customer"
)


def upgrade():
    orders = op.create_table(
        "al_orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer", sa.Text),
        sa.Column("amount", sa.Numeric),
        sa.Column("paid", sa.Boolean, nullable=False),
    )
    op.bulk_insert(
        orders,
        [
            {"id": i, "customer": f"c{i % 3}", "amount": i, "paid": i % 4 != 0}
            for i in range(1, 41)
        ],
    )
    op.get_bind().execute(
        sa.text(
            "SELECT pgtrickle.create_stream_table(name => :name, query => :query, "
            "schedule => :schedule, refresh_mode => :mode)"
        ),
        {"name": "al_totals", "query": QUERY, "schedule": "1h", "mode": "DIFFERENTIAL"},
    )


def downgrade():
    op.get_bind().execute(
        sa.text("SELECT pgtrickle.drop_stream_table(:name)"), {"name": "al_totals"}
    )
    op.drop_table("al_orders")
