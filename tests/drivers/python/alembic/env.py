"""Alembic's environment for the migration-tool test (tests/drivers/python/alembic_migrations.py).

Online mode only: one SQLAlchemy connection (psycopg 3) to the URL in `sqlalchemy.url`, and each
migration in a transaction of its own (`transaction_per_migration`), as a migration tool that
keeps failed migrations out of the database runs them.
"""

from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
