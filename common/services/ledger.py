"""The ledger: the only way a user's ``balance`` changes (docs/money.md).

The posting rule exists once, as SQL: ``posting`` gives the CTEs that append entries and move
balances in ONE statement, so ``balance == sum(ledger)`` holds at every commit and a cause (its
key) posts at most once. ``post_entries`` (and ``post_entry`` for one) runs it on entries from
Python; the sale approval batch (common/services/sales.py) composes it with its own CTEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.config import CLAIM_NETWORK
from common.errors import InvalidInput
from common.events import adopt_emitted
from common.tracing import current_trace_id

# The posting rule. ``{entries}`` is a CTE of the entries to post, with the columns ``seq`` (their
# order), ``user_id``, ``amount``, ``kind``, ``reference_type``, ``reference_id``,
# ``idempotency_key`` and ``allow_debt``.
# - ``fresh``: each key's first entry, unless the key is in the ledger (a repeat posts nothing).
# - ``low``: per user the statement moves, the lowest the fresh entries take the balance at a
#   debit that must be covered (not ``allow_debt``, a reversal of spent money): NULL when none.
# - ``owner``: lock each user row only when that low point leaves the balance >= 0 (the lock
#   re-checks it on the newest row version, so concurrent debits serialise on it), in id order so
#   that concurrent batches cannot deadlock on each other's users. NO KEY UPDATE, not UPDATE:
#   rows inserted earlier in the transaction with a foreign key to the user (a payment) hold KEY
#   SHARE on it, and two such transactions upgrading to FOR UPDATE would deadlock.
# - ``entry``: all or nothing: append the fresh entries, in ``seq`` order (so their ids follow
#   it), only if every user was locked (one not locked is a refused debit, or no such user); ON
#   CONFLICT still skips a key that a concurrent transaction posted since this statement began.
# - ``moved``: add what was appended, in one update per user (a row changes once per statement,
#   so a statement that moves another column of the same users passes it as ``also_add``).
# - ``running``: each appended entry with the user's balance after it.
# Joining two CTEs is a nested loop over both when the planner guesses them small (it guesses
# one row for an UPDATE ... RETURNING), so the steps group and window instead of joining.
_POSTING = """
, fresh AS MATERIALIZED (
    SELECT DISTINCT ON (given.idempotency_key) given.* FROM {entries} AS given
    WHERE NOT EXISTS (SELECT 1 FROM ledger_entries
                      WHERE ledger_entries.idempotency_key = given.idempotency_key)
    ORDER BY given.idempotency_key, given.seq
), low AS (
    SELECT user_id, min(reach) FILTER (WHERE amount < 0 AND NOT allow_debt) AS reach
    FROM (SELECT user_id, amount, allow_debt,
                 sum(amount) OVER (PARTITION BY user_id ORDER BY seq) AS reach
          FROM fresh{also_users}) AS step
    GROUP BY user_id
), owner AS (
    SELECT users.id FROM users JOIN low ON low.user_id = users.id
    WHERE low.reach IS NULL OR users.balance + low.reach >= 0
    ORDER BY users.id
    FOR NO KEY UPDATE OF users
), entry AS (
    INSERT INTO ledger_entries (user_id, amount, kind, reference_type, reference_id,
                                idempotency_key)
    SELECT user_id, amount, kind, reference_type, reference_id, idempotency_key FROM fresh
    WHERE (SELECT count(*) FROM owner) = (SELECT count(*) FROM low)
    ORDER BY seq
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, user_id, amount, kind, idempotency_key
), move AS (
    SELECT user_id, sum(posted) AS posted, sum(also) AS also
    FROM (SELECT user_id, amount AS posted, 0 AS also FROM entry{also_rows}) AS part
    GROUP BY user_id
), moved AS (
    UPDATE users SET balance = users.balance + move.posted{also_set}
    FROM move WHERE users.id = move.user_id
    RETURNING users.id, users.balance
), running AS (
    SELECT id, user_id, amount, kind, idempotency_key, balance FROM (
        SELECT part.*, first_value(after) OVER later - coalesce(sum(amount) OVER (
                   later ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS balance
        FROM (SELECT id, user_id, amount, kind, idempotency_key, NULL AS after FROM entry
              UNION ALL
              SELECT NULL, id, 0, NULL, NULL, balance FROM moved) AS part
        WINDOW later AS (PARTITION BY user_id ORDER BY id DESC NULLS FIRST)
    ) AS step WHERE id IS NOT NULL
)"""

# The ``balance:updated`` event of each entry in ``running``: columns ``user_id``, ``id`` (the
# entry's, in posting order), ``event``, ``data``; ``{reason}`` is the entry's kind unless the
# statement names another reason. The statement composing ``posting`` writes them to the outbox.
_BALANCE_EVENTS = """
    SELECT running.user_id, running.id, 'balance:updated' AS event,
           jsonb_build_object('newBalance', running.balance, 'change', running.amount,
                              'reason', {reason}) AS data
    FROM running"""


def posting(entries: str, *, also_add: tuple[str, str] | None = None) -> str:
    """The posting rule as CTEs (``, fresh AS (...), ..., running AS (...)``) to follow a
    ``WITH`` that defines the CTE ``entries``; the CTE names above are taken. ``also_add`` is
    ``(column, cte)``: add the ``amount`` of each ``user_id`` row of ``cte`` to that column of
    ``users`` in the same update as the balance (the approval's ``pending_balance``); those users
    are locked with the others."""
    also_users = also_rows = also_set = ""
    if also_add is not None:
        column, cte = also_add
        also_users = f" UNION ALL SELECT user_id, 0, true, NULL FROM {cte}"
        also_rows = f" UNION ALL SELECT user_id, 0, amount FROM {cte}"
        also_set = f", {column} = users.{column} + move.also"
    return _POSTING.format(entries=entries, also_users=also_users, also_rows=also_rows,
                           also_set=also_set)


def balance_events(*, reason: str = "running.kind") -> str:
    """A SELECT of the ``balance:updated`` events of what ``posting`` appended (see above)."""
    return _BALANCE_EVENTS.format(reason=reason)


# ``posting`` over entries sent as arrays, and their events in the outbox. One row per entry in
# order: the entry and the balance after it (NULL for a repeat), its event (paired by order: the
# outbox ids follow the entries'), and whether the batch was allowed. The lists are short (one
# entry, mostly), so the answer may join CTEs.
_POST = text(
    """
    WITH given AS (
        SELECT * FROM unnest(CAST(:user_ids AS bigint[]), CAST(:amounts AS numeric[]),
                             CAST(:kinds AS text[]), CAST(:reference_types AS text[]),
                             CAST(:reference_ids AS bigint[]), CAST(:keys AS text[]),
                             CAST(:allow_debts AS boolean[]), CAST(:reasons AS text[]))
            WITH ORDINALITY AS given(user_id, amount, kind, reference_type, reference_id,
                                     idempotency_key, allow_debt, reason, seq)
    )"""
    + posting("given")
    + f"""
    , event AS (
        INSERT INTO outbox (target, target_id, event, data, trace_id)
        SELECT 'user', user_id, event, data, CAST(:trace_id AS varchar)
        FROM ({balance_events(reason="(SELECT reason FROM fresh "
                                      "WHERE fresh.idempotency_key = running.idempotency_key)")})
            AS balance
        ORDER BY id
        RETURNING id, target, target_id, event, data, trace_id
    )
    SELECT (SELECT count(*) FROM owner) = (SELECT count(*) FROM low) AS allowed,
           done.id AS entry_id, done.balance,
           event.id, event.target, event.target_id, event.event, event.data, event.trace_id
    FROM given
    LEFT JOIN fresh ON fresh.seq = given.seq
    LEFT JOIN (SELECT id, idempotency_key, balance, row_number() OVER (ORDER BY id) AS n
               FROM running) AS done ON done.idempotency_key = fresh.idempotency_key
    LEFT JOIN (SELECT *, row_number() OVER (ORDER BY id) AS n FROM event)
        AS event ON event.n = done.n
    ORDER BY given.seq
    """
)


_LOCK_USERS = text(
    "SELECT id FROM users WHERE id = ANY(CAST(:user_ids AS bigint[])) ORDER BY id FOR NO KEY UPDATE"
)


class InsufficientFunds(InvalidInput):
    """A debit larger than the balance: nothing was posted."""

    code = "insufficient_funds"


@dataclass(frozen=True, slots=True)
class Entry:
    """One posting: ``amount`` (signed) for ``user_id``, at most once per ``key``."""

    user_id: int
    amount: Decimal
    kind: str
    key: str
    reference_type: str | None = None
    reference_id: int | None = None
    reason: str | None = None
    allow_debt: bool = False


@dataclass(frozen=True, slots=True)
class Posted:
    entry_id: int
    balance: Decimal
    change: Decimal


def post_entries(session: Session, entries: Sequence[Entry]) -> list[Posted | None]:
    """Post ``entries`` in one statement as if one after the other: for each, ``Posted`` with
    the balance after it, or ``None`` when its key already posted (earlier, or earlier in the
    list).

    All or nothing: raises ``InsufficientFunds`` (nothing written) when a debit would take its
    user's balance below zero, counting the entries before it, unless ``allow_debt`` (only a
    reversal of money already spent may leave a debt); a credit on a balance in debt pays the debt
    back first. Emits ``balance:updated`` per entry in the caller's transaction. The caller
    commits.
    """
    if not entries:
        return []
    amounts = [_whole_cents(e.amount) for e in entries]
    if any(a < 0 for a in amounts):
        # A debit is checked against the balance, so its users are locked (in id order) before
        # the posting statement takes its snapshot: a key committed by another transaction while
        # we waited is then seen as posted, both for a credit meant to cover a later debit in
        # this list and for a replayed debit (a repeat, not InsufficientFunds). A key belongs to
        # one user, so locking the list's users covers every key in it.
        session.execute(_LOCK_USERS, {"user_ids": sorted({e.user_id for e in entries})})
    rows = session.execute(_POST, {
        "user_ids": [e.user_id for e in entries], "amounts": amounts,
        "kinds": [e.kind for e in entries], "keys": [e.key for e in entries],
        "reference_types": [e.reference_type for e in entries],
        "reference_ids": [e.reference_id for e in entries],
        "allow_debts": [e.allow_debt for e in entries],
        "reasons": [e.reason or e.kind for e in entries], "trace_id": current_trace_id(),
    }).all()
    if not rows[0].allowed:
        raise InsufficientFunds("Amount exceeds available balance")
    adopt_emitted(session, [r for r in rows if r.id is not None])
    return [None if r.entry_id is None else Posted(entry_id=r.entry_id, balance=r.balance, change=a)
            for r, a in zip(rows, amounts, strict=True)]


def post_entry(
    session: Session,
    *,
    user_id: int,
    amount: Decimal,
    kind: str,
    key: str,
    reference_type: str | None = None,
    reference_id: int | None = None,
    reason: str | None = None,
    allow_debt: bool = False,
) -> Posted | None:
    """Post ``amount`` (signed) for ``user_id`` unless ``key`` already posted (then ``None``):
    ``post_entries`` of one entry, with its rules and its ``InsufficientFunds``."""
    return post_entries(session, [Entry(
        user_id=user_id, amount=amount, kind=kind, key=key, reference_type=reference_type,
        reference_id=reference_id, reason=reason, allow_debt=allow_debt)])[0]


def _whole_cents(amount: Decimal) -> Decimal:
    amount = Decimal(amount)
    if amount == 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"ledger amount must be non-zero whole cents, got {amount}")
    return amount


# Users whose money does not add up: balance against the ledger, pending balance against pending
# sales, and no balance below zero but a debt: never deeper than all the user's reversals (of
# sales and of referrals) together.
_CHECK = text(
    """
    WITH ledger AS (
        SELECT user_id, sum(amount) AS total,
               coalesce(sum(amount) FILTER (WHERE kind IN ('sale_reversal', 'referral_reversal')), 0)
                   AS reversed
        FROM ledger_entries GROUP BY user_id
    ), pending AS (
        SELECT user_id, sum(commission_amount) AS total FROM sales
        WHERE status = 'pending' GROUP BY user_id
    )
    SELECT u.id, u.balance, coalesce(l.total, 0) AS ledger_total,
           u.pending_balance, coalesce(p.total, 0) AS pending_total
    FROM users u
    LEFT JOIN ledger l ON l.user_id = u.id
    LEFT JOIN pending p ON p.user_id = u.id
    WHERE u.balance <> coalesce(l.total, 0)
       OR (u.balance < 0 AND u.balance < coalesce(l.reversed, 0))
       OR u.pending_balance <> coalesce(p.total, 0) OR u.pending_balance < 0
    ORDER BY u.id
    """
)

# Payments the provider paid whose state says otherwise (paid twice, or paid and given back).
_CHECK_PAYOUTS = text(
    """
    SELECT p.id, p.status, p.amount, s.status AS provider_status, s.amount AS provider_amount
    FROM sandbox_payouts s JOIN payments p ON s.idempotency_key = 'payment:' || p.id
    WHERE s.status = 'paid' AND (p.status IN ('failed', 'cancelled') OR s.amount <> p.amount)
    UNION ALL
    SELECT p.id, p.status, p.amount, NULL, NULL FROM payments p
    WHERE p.status = 'paid' AND NOT EXISTS (
        SELECT 1 FROM ledger_entries e
        WHERE e.idempotency_key = 'payout_hold:' || p.id)
    """
)


# Claims whose credit does not match their decision: an approved claim has exactly one sale (of
# its amount), not rejected while it is only the claim's (a network's chargeback may reject it once
# the network reported the conversion), any other claim none (the sale's unique claim_id forbids two).
_CHECK_CLAIMS = text(
    """
    SELECT cl.id, cl.status, cl.amount, s.id AS sale_id, s.commission_amount
    FROM claims cl LEFT JOIN sales s ON s.claim_id = cl.id
    WHERE (cl.status = 'approved') <> (s.id IS NOT NULL) OR s.commission_amount <> cl.amount
       OR (s.status = 'rejected' AND s.network = :claim_network)
    """
)


# One conversion paid by an approved claim and by a network's report (docs/money.md "Claims"): the
# claim's sale (not rejected) beside another sale of the user's offer, not rejected, made at or
# after the claim's click, that either came before the approval (which should have refused:
# ``offer_converted``) or came while the claim's sale had no network transaction yet naming no
# click or a click made before the claim's sale (it should have been that claim's conversion,
# ``claimed``). A sale of a click made after the claim's sale is another conversion; so is any sale
# once the claim's sale has its network transaction (the network's report of the claim's
# conversion has come). Exact in what it reports: every row is a state the rules never make.
_CHECK_CLAIM_CONVERSIONS = text(
    f"""
    SELECT cl.id, s.id AS sale_id, other.id AS other_id
    FROM claims cl
    JOIN sales s ON s.claim_id = cl.id AND s.status <> 'rejected'
    JOIN clicks c ON c.public_id = cl.click_id
    JOIN sales other ON other.user_id = cl.user_id AND other.offer_id = cl.offer_id
         AND other.id <> s.id AND other.status <> 'rejected' AND other.created_at >= c.created_at
    LEFT JOIN clicks other_click ON other_click.public_id = other.click_id
    WHERE cl.status = 'approved'
      AND (other.created_at <= cl.decided_at
           OR (s.network = '{CLAIM_NETWORK}'
               AND (other_click.created_at IS NULL OR other_click.created_at <= s.created_at)))
    ORDER BY cl.id, other.id
    """
)


def check_ledger(session: Session) -> list[str]:
    """One line per inconsistency; empty when every user's money adds up."""
    problems = [
        f"user {r.id}: balance {r.balance} vs ledger {r.ledger_total}, "
        f"pending {r.pending_balance} vs pending sales {r.pending_total}"
        for r in session.execute(_CHECK)
    ]
    problems += [
        f"payment {r.id}: status {r.status} amount {r.amount}, "
        f"provider {r.provider_status} {r.provider_amount}"
        for r in session.execute(_CHECK_PAYOUTS)
    ]
    problems += [
        f"claim {r.id}: status {r.status} amount {r.amount}, sale {r.sale_id} {r.commission_amount}"
        for r in session.execute(_CHECK_CLAIMS, {"claim_network": CLAIM_NETWORK})
    ]
    problems += [
        f"claim {r.id}: its sale {r.sale_id} and sale {r.other_id} pay one conversion"
        for r in session.execute(_CHECK_CLAIM_CONVERSIONS)
    ]
    return problems
