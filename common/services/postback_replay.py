"""Replaying a logged callback: checked again with today's configuration (the network's secret,
scheme and allow-list, say after a secret was fixed) and applied through the live path's rule
(``record_callback``: the one credit rule of ``common/services/sales.py``), so a replay is
idempotent exactly as a network's own retry is. Each replay writes its own log row
(``replay_of`` = the replayed row) and an audit row; the replayed row is never changed.

What cannot be checked again: the headers and the raw query string of the request (they are not
stored; no scheme we speak signs them), and a body that could not be read (only the query's
parameters were logged).
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.orm import Session

from common.config import NetworkConfig
from common.errors import Conflict, DomainError, NotFound
from common.models.sales import PostbackLog
from common.postbacks import Adapter, PostbackInvalid, PostbackRefused, adapter_for, source_allowed
from common.services.audit import record_audit
from common.services.postback_log import LogSearch, conditions
from common.services.postbacks import log_postback, record_callback

_log = PostbackLog.__table__


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replay did: its own log row, and the verdict, outcome and sale of the check."""

    id: int
    replay_of: int
    network: str
    verdict: str
    outcome: str | None
    sale_id: int | None = None
    sale_status: str | None = None
    detail: str | None = None  # why it was refused, as the network would have been told

    @property
    def result(self) -> str:
        """``verdict/outcome``, or the verdict alone for a refusal (summaries)."""
        return f"{self.verdict}/{self.outcome}" if self.outcome else self.verdict


def replay_postback(session: Session, *, log_id: int, networks: Mapping[str, NetworkConfig],
                    hold_seconds: int, audit: Mapping[str, Any], via: str | None = None) -> Replay:
    """Replay log row ``log_id`` and audit it (``audit``: actor_id, ip, trace_id; ``via`` goes
    in the audit row as ``source``). ``NotFound`` for no such row; ``Conflict`` when its network
    is not configured today (nothing is written then)."""
    original = session.execute(select(_log).where(_log.c.id == log_id)).mappings().first()
    if original is None:
        raise NotFound("Postback not found")
    config = networks.get(original["network"])
    adapter = adapter_for(config) if config else None
    if adapter is None:
        raise Conflict(f"Network {original['network']!r} is not configured "
                       f"(POSTBACK_SECRET_{original['network'].upper()})")
    replay = _check_and_apply(session, adapter, original, hold_seconds)
    after: dict[str, Any] = {"replayId": replay.id, "verdict": replay.verdict,
                             "outcome": replay.outcome, "saleId": replay.sale_id}
    if via:
        after["source"] = via
    record_audit(session, action="postback.replay", target_type="postback", target_id=log_id,
                 before={"verdict": original["verdict"], "outcome": original["outcome"],
                         "saleId": original["sale_id"]},
                 after=after, **audit)
    return replay


def _check_and_apply(session: Session, adapter: Adapter, original: RowMapping,
                     hold_seconds: int) -> Replay:
    """The live handler's checks in its order (source IP, signature, parameters), then the
    sale change; every way out writes the replay's log row."""
    # Strings, as the live path verified them (a row written by hand could hold other JSON).
    params = {str(k): v if isinstance(v, str) else str(v) for k, v in original["params"].items()}
    ip, network = original["ip"], original["network"]
    row = {"network": network, "method": original["method"], "params": params, "ip": ip,
           "replay_of": original["id"], **adapter.log_keys(params)}

    def refused(verdict: str, detail: str, outcome: str | None = None) -> Replay:
        log_id = log_postback(session, verdict=verdict, outcome=outcome, **row)
        return Replay(log_id, original["id"], network, verdict, outcome, detail=detail)

    if not source_allowed(adapter.config, ip or ""):
        return refused("ip_refused", "Source not allowed")
    try:
        callback = adapter.verify(params, headers={}, raw_query=urllib.parse.urlencode(params))
    except PostbackRefused:
        return refused("bad_signature", "Bad signature")
    except PostbackInvalid as exc:
        return refused("invalid", f"Invalid callback: {exc}")
    try:
        with session.begin_nested():  # a refusal below leaves nothing of the sale change
            result, log_id = record_callback(
                session, network=network, method=original["method"], params=params, ip=ip,
                callback=callback, hold_seconds=hold_seconds, replay_of=original["id"])
    except DomainError as exc:  # unknown user or offer, another user's transaction id
        return refused("accepted", exc.message, getattr(exc, "outcome", "refused"))
    return Replay(log_id, original["id"], network, "accepted", result.outcome, result.sale_id,
                  result.status)


# The bulk replay (``savebucks replay-postbacks``).
MAX_BATCH = 100
Begin = Callable[[], AbstractContextManager[Session]]


def replay_candidates(session: Session, search: LogSearch, *, after_id: int, up_to_id: int,
                      batch: int) -> list[int]:
    """The next ``batch`` ids matching ``search``, oldest first, after ``after_id`` and at most
    ``up_to_id``: callbacks as the networks sent them, never rows that replays wrote."""
    return list(session.scalars(
        select(_log.c.id)
        .where(*conditions(_log, search.shape()), _log.c.id > after_id, _log.c.id <= up_to_id,
               _log.c.replay_of.is_(None))
        .order_by(_log.c.id).limit(batch),
        search.params()))


def replay_many(begin: Begin, *, search: LogSearch, limit: int, dry_run: bool,
                networks: Mapping[str, NetworkConfig], hold_seconds: int,
                report: Callable[[Replay], None] = lambda r: None) -> Counter[str]:
    """Replay up to ``limit`` logged callbacks matching ``search`` (as of the start: the rows
    this run writes are not picked up again), one transaction each, so one that fails leaves the
    others applied. ``dry_run``: each is replayed in a transaction that is rolled back, so the
    report says exactly what a run would do and nothing is written. ``begin()`` opens a session
    in a new transaction and commits it on exit (``UnitOfWork.transaction``)."""
    with begin() as session:
        up_to = session.scalar(select(_log.c.id).order_by(_log.c.id.desc()).limit(1)) or 0
    outcomes: Counter[str] = Counter()
    after = 0
    while sum(outcomes.values()) < limit:
        with begin() as session:
            ids = replay_candidates(session, search, after_id=after, up_to_id=up_to,
                                    batch=min(MAX_BATCH, limit - sum(outcomes.values())))
        if not ids:
            break
        for log_id in ids:
            replay = _one(begin, log_id, dry_run=dry_run, networks=networks,
                          hold_seconds=hold_seconds)
            outcomes[replay.result] += 1
            report(replay)
        after = ids[-1]
    return outcomes


class _DryRun(Exception):
    """Rolls a dry run's transaction back, carrying what the replay did."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay


def _one(begin: Begin, log_id: int, *, dry_run: bool, networks: Mapping[str, NetworkConfig],
         hold_seconds: int) -> Replay:
    audit = {"actor_id": None, "ip": None}  # the trace id: the run's (the command sets it)
    try:
        with begin() as session:
            replay = replay_postback(session, log_id=log_id, networks=networks,
                                     hold_seconds=hold_seconds, audit=audit, via="cli")
            if dry_run:
                raise _DryRun(replay)
    except _DryRun as exc:
        return exc.replay
    except Conflict as exc:  # the network is not configured: counted, nothing written
        return Replay(0, log_id, "", "not_configured", None, detail=exc.message)
    return replay
