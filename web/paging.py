"""A page of a hot list read: its rows carry the list's total (``count(*) OVER ()``), so one round
trip answers both; only a page past the end, where no row carries it, counts apart."""

from __future__ import annotations

from typing import Any

from common.sql import Query
from web.db import Database, Row


async def fetch_page(db: Database, rows_query: Query, count_query: Query, params: dict[str, Any],
                     *, page: int) -> tuple[list[Row], int]:
    rows = await db.fetch_all(rows_query, params)
    if rows:
        return rows, rows[0]["total"]
    if page > 1:
        counted = await db.fetch_one(count_query, params)
        return rows, counted["total"] if counted else 0
    return rows, 0
