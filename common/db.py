"""The declarative base, the column types every model uses, and the engines.

How each process reaches PostgreSQL (measured in ``bench/``, written down in ``docs/database.md``):
- workers and the CLI use the SQLAlchemy sync engine and ``Session``;
- the web runs the same sync services in a bounded thread pool for writes, and executes hot reads
  (Core statements compiled once, see ``common.sql``) on a psycopg ``AsyncConnectionPool``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    MetaData,
    Numeric,
    Table,
    create_engine,
    func,
)
from sqlalchemy.orm import DeclarativeBase, mapped_column

from common.config import Settings

# Names for constraints, so that migrations and models agree on them and downgrades can drop them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Money in the account currency, exact: NUMERIC(14, 2) in PostgreSQL, Decimal in Python.
Money = Annotated[Decimal, mapped_column(Numeric(14, 2))]
BigId = Annotated[int, mapped_column(BigInteger, primary_key=True, autoincrement=True)]
CreatedAt = Annotated[
    dt.datetime, mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
]
UpdatedAt = Annotated[
    dt.datetime,
    mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    ),
]
Timestamp = Annotated[dt.datetime, mapped_column(DateTime(timezone=True))]


class Base(DeclarativeBase):
    # Every model maps one table, so ``Model.__table__`` is a Table (insert/update accept it);
    # SQLAlchemy types it as the wider FromClause unless the base says so.
    __table__: ClassVar[Table]
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: BigInteger,
        dt.datetime: DateTime(timezone=True),
        Decimal: Numeric(14, 2),
    }


def make_sync_engine(
    settings: Settings, *, pool_size: int | None = None, pool_timeout: float | None = None
) -> Engine:
    """The engine of workers, the CLI and the web's write threads (which pass the web's shorter
    ``pool_timeout``). Every checkout pings its connection first (``pool_pre_ping``), so a
    connection left over from before a database restart is replaced, not handed out."""
    return create_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_pool_max_overflow,
        pool_timeout=pool_timeout or settings.db_pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args(settings),
    )


def connect_args(settings: Settings) -> dict[str, object]:
    """What every psycopg connection of the project is opened with (the web's request pool adds
    its own ``application_name``, autocommit and dict rows)."""
    options = f"-c statement_timeout={settings.db_statement_timeout_ms} -c timezone=UTC"
    return {"options": options, "application_name": "savebucks",
            "connect_timeout": settings.db_connect_timeout,
            "prepare_threshold": settings.database_prepare_threshold}
