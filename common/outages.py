"""What a dependency being down, unreachable or out of connections looks like to our code, in one
place: the web answers these with 503 (``web/middlewares.py``), a task meeting one runs again
later (``common/taskqueue.py``)."""

from __future__ import annotations

import psycopg
import redis
import sqlalchemy.exc

# PostgreSQL (or PgBouncer in front of it) through psycopg (its pool's PoolTimeout is an
# OperationalError) or SQLAlchemy (its pool's TimeoutError).
DATABASE_DOWN = (psycopg.OperationalError, sqlalchemy.exc.OperationalError,
                 sqlalchemy.exc.TimeoutError)
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
DEPENDENCY_DOWN = DATABASE_DOWN + REDIS_DOWN
