"""Autogenerate an Alembic revision from the models: ``python scripts/make_migration.py "message"``.

Runs against a scratch SQLite database brought to head first, so the revision holds exactly the
difference between the migrations and the models.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from rhip.schema import load_all
from rhip.store import make_engine, upgrade
from rhip.store.migrate import alembic_config


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        upgrade(engine)
        with engine.begin() as conn:
            cfg = alembic_config(conn, load_all())
            command.revision(cfg, message=message, autogenerate=True)
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "schema change")
