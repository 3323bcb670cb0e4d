"""The cluster's fault drills (tests/cluster/drills.py) in their long form, with figures: each
fault held ``--outage`` seconds under load, then ``--after`` seconds of load, on a cluster of its
own (tests/cluster/harness.py; private servers only).

    .venv/bin/python bench/cluster_drills.py                      # every drill, 10 s outages
    .venv/bin/python bench/cluster_drills.py --only kill_web,restart_redis --outage 20

Prints, per drill: the answers by route and status (503s during the outage; any other 5xx is a
failure), withdrawals accepted and paid, socket reconnect times after a kill, events delivered
and delayed (published more than 1 s after commit), how long the cluster took to settle, and
``savebucks check-ledger``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster import drills
from tests.cluster.harness import running_cluster

FAULTS = {
    "kill_web": drills.kill_web,
    "restart_web": drills.restart_web,
    "restart_database": drills.restart_database,
    "restart_redis": drills.restart_redis,
    "restart_rabbitmq": drills.restart_rabbitmq,
    "kill_beat": drills.kill_beat,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FAULTS))
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--members", type=int, default=20)
    args = parser.parse_args()
    with running_cluster() as cluster:
        for name in args.only.split(","):
            drill = drills.Drill(cluster, outage=args.outage, load_after=args.after)
            report = asyncio.run(drill.run(FAULTS[name], members=args.members))
            verdict = "ok" if _sound(report, instance_lost=name == "kill_web") else "FAILED"
            print(f"{name}: {verdict}: {report.figures()}", flush=True)


def _sound(report: drills.Report, *, instance_lost: bool) -> bool:
    try:
        report.assert_sound(instance_lost=instance_lost)
    except AssertionError:
        return False
    return True


if __name__ == "__main__":
    main()
