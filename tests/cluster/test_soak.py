"""The soak's smoke (``bench/soak.py`` runs it 20 minutes with 2,000 sockets): 12 s with 200
sockets on the test run's cluster, every answer given, every socket alive, the ledger whole."""

from __future__ import annotations

import pytest

from bench.soak import soak
from tests.cluster.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


async def test_a_short_soak_runs_clean(healthy_cluster: Cluster) -> None:
    lines: list[str] = []
    figures = await soak(healthy_cluster, seconds=12, sockets=200, sample_every=4, out=lines.append)
    report = "\n".join(lines)
    assert figures["errors"] == 0, report
    assert figures["sockets_alive_at_end"] == figures["sockets"], report
    assert not figures["chat"]["errors"], report
    assert figures["chat"]["received"] > 0, report
    assert figures["ledger_ok"], report
