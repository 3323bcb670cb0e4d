"""Why DATABASE_PREPARE_THRESHOLD exists: through PgBouncer 1.18 in transaction pooling, a
statement psycopg prepared in one transaction is gone when the next transaction runs on another
server connection. With the threshold off (what the cluster runs), nothing is prepared."""

from __future__ import annotations

import psycopg
import pytest

from tests.cluster.harness import Cluster

pytestmark = pytest.mark.cluster


def _runs_twice_around_another_client(cluster: Cluster, threshold: int | None) -> None:
    url = cluster.pooled_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True, prepare_threshold=threshold) as mine, \
            psycopg.connect(url) as other:
        mine.execute("SELECT %s::int", (1,))  # prepared at once with threshold 0
        # The other client takes the server connection we just used (PgBouncer hands out the
        # most recently used one) and keeps it in its transaction.
        other.execute("SELECT 1")
        mine.execute("SELECT %s::int", (2,))
        other.rollback()


def test_prepared_statements_do_not_survive_transaction_pooling(healthy_cluster: Cluster) -> None:
    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
        _runs_twice_around_another_client(healthy_cluster, 0)


def test_with_the_threshold_off_nothing_is_prepared(healthy_cluster: Cluster) -> None:
    _runs_twice_around_another_client(healthy_cluster, None)
