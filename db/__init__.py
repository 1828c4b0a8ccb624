"""The catalog database: every table (`db.tables`), the engines and transactions (`db.engine`), the Alembic
migrations (`db.migrate`), cross-process locks (`db.locks`) and per-tenant export and import (`db.transfer`).

SQLite under the data folder is the embedded default; PostgreSQL (psycopg 3) when several hosts share the service.
The package sits at the bottom of the import order, beside `encoders/` and `store/`: it knows no store.
"""

from db.engine import CatalogUnavailable, Database, check_url
from db.migrate import SchemaError, open_catalog

__all__ = ["CatalogUnavailable", "Database", "SchemaError", "check_url", "open_catalog"]
