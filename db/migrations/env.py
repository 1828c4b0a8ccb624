"""Alembic's environment for the catalog. It runs only through `db.migrate` (`snapdex db upgrade`, and every start
of the service), which hands it a connection already inside the migration lock's transaction: the whole upgrade
commits or rolls back as one, and a second process starting at the same moment finds it done."""

from alembic import context

from db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the catalog's migrations run through snapdex (`snapdex db upgrade`), not the alembic command: "
                       "it takes the migration lock and knows the catalog's URL")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most of a table: Alembic's batch mode copies it into a new one instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
