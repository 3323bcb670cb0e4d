"""The ledger: the only way a user's ``balance`` changes (docs/money.md).

``post_entry`` appends an entry and moves the balance in ONE statement, so ``balance ==
sum(ledger)`` holds at every commit, and a cause (its ``key``) can post at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.errors import InvalidInput
from common.events import emit

# Lock the user row only when the entry is a credit, leaves the balance >= 0, or may leave a debt
# (``:allow_debt``, a reversal of spent money; the lock re-checks the condition on the newest row
# version, so concurrent debits serialise on it), append the entry
# unless its key exists, and add the amount only when the entry was appended. The last column
# tells a repeated key (nothing to do) from a refused debit. NO KEY UPDATE, not UPDATE: rows
# inserted earlier in the transaction with a foreign key to the user (a payment) hold KEY SHARE
# on it, and two such transactions upgrading to FOR UPDATE would deadlock.
_POST = text(
    """
    WITH owner AS (
        SELECT id FROM users
        WHERE id = :user_id AND (:amount > 0 OR balance + :amount >= 0 OR :allow_debt)
        FOR NO KEY UPDATE
    ), entry AS (
        INSERT INTO ledger_entries (user_id, amount, kind, reference_type, reference_id,
                                    idempotency_key)
        SELECT owner.id, :amount, :kind, :reference_type, :reference_id, :key FROM owner
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, user_id, amount
    ), moved AS (
        UPDATE users SET balance = users.balance + entry.amount
        FROM entry WHERE users.id = entry.user_id
        RETURNING users.balance
    )
    SELECT (SELECT id FROM entry) AS entry_id,
           (SELECT balance FROM moved) AS balance,
           EXISTS (SELECT 1 FROM ledger_entries WHERE idempotency_key = :key) AS seen
    """
)


class InsufficientFunds(InvalidInput):
    """A debit larger than the balance: nothing was posted."""


@dataclass(frozen=True, slots=True)
class Posted:
    entry_id: int
    balance: Decimal
    change: Decimal


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
    """Post ``amount`` (signed) for ``user_id`` unless ``key`` already posted (then ``None``).

    Raises ``InsufficientFunds`` (nothing written) when a debit would take the balance below zero,
    unless ``allow_debt`` (only a reversal of money already spent may leave a debt). A credit is
    always posted: on a balance in debt it pays the debt back first.
    Emits ``balance:updated`` in the caller's transaction. The caller commits.
    """
    amount = Decimal(amount)
    if amount == 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"ledger amount must be non-zero whole cents, got {amount}")
    row = session.execute(
        _POST,
        {
            "user_id": user_id,
            "amount": amount,
            "kind": kind,
            "key": key,
            "reference_type": reference_type,
            "reference_id": reference_id,
            "allow_debt": allow_debt,
        },
    ).one()
    if row.entry_id is None:
        if row.seen:
            return None
        raise InsufficientFunds("Amount exceeds available balance")
    emit(
        session,
        event="balance:updated",
        data={"newBalance": float(row.balance), "change": float(amount), "reason": reason or kind},
        user_id=user_id,
    )
    return Posted(entry_id=row.entry_id, balance=row.balance, change=amount)


# Users whose money does not add up: balance against the ledger, pending balance against pending
# sales, and no balance below zero but a debt: never deeper than all the user's reversals together.
_CHECK = text(
    """
    WITH ledger AS (
        SELECT user_id, sum(amount) AS total,
               coalesce(sum(amount) FILTER (WHERE kind = 'sale_reversal'), 0) AS reversed
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
# its amount), any other claim none (the sale's unique claim_id forbids two).
_CHECK_CLAIMS = text(
    """
    SELECT cl.id, cl.status, cl.amount, s.id AS sale_id, s.commission_amount
    FROM claims cl LEFT JOIN sales s ON s.claim_id = cl.id
    WHERE (cl.status = 'approved') <> (s.id IS NOT NULL) OR s.commission_amount <> cl.amount
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
        for r in session.execute(_CHECK_CLAIMS)
    ]
    return problems
