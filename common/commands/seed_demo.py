"""``savebucks seed-demo``: demo data through the real services; running it again adds nothing.

Offers in several categories, two users with pending and approved sales, and an admin whose
credentials it prints. Refused in production.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from common.cli import command
from common.config import Settings, load_settings
from common.models import Offer, User
from common.security.passwords import hash_password
from common.services.offers import create_offer
from common.services.sales import approve_sale, credit_sale
from common.uow import SyncContext

NETWORK = "demo"
ADMIN = ("admin@savebucks.local", "Demo Admin", "demo-admin-password")
USERS = [("alice@savebucks.local", "Alice"), ("bob@savebucks.local", "Bob")]
USER_PASSWORD = "demo-user-password"
OFFERS = [
    ("Reach level 10 in Dragon Realms", "games", Decimal("4.00")),
    ("Win 3 matches in Card Clash", "games", Decimal("2.50")),
    ("Play Puzzle Quest for 30 minutes", "games", Decimal("1.20")),
    ("Share your shopping habits", "surveys", Decimal("1.50")),
    ("Ten-minute tech survey", "surveys", Decimal("0.90")),
    ("Sign up for a streaming trial", "subscriptions", Decimal("8.00")),
    ("Open a free savings account", "finance", Decimal("15.00")),
    ("First order at a grocery app", "shopping", Decimal("5.00")),
    ("Install and open a fitness app", "apps", Decimal("0.60")),
    ("Watch five short videos", "videos", Decimal("0.20")),
]


def _user(session: Session, email: str, name: str, password: str, role: str, settings: Settings) -> int:
    found = session.execute(select(User.id).where(func.lower(User.email) == email)).scalar()
    if found is not None:
        return found
    return session.execute(
        insert(User).values(
            email=email, name=name, role=role,
            password_hash=hash_password(password, rounds=settings.bcrypt_rounds),
        )
        .returning(User.id)
    ).scalar_one()


def _offers(session: Session) -> list[str]:
    external_ids = []
    for n, (title, category, network_payout) in enumerate(OFFERS, start=1):
        external_id = f"demo-{n}"
        external_ids.append(external_id)
        exists = session.execute(
            select(Offer.id).where(Offer.network == NETWORK, Offer.external_id == external_id)
        ).scalar()
        if exists is None:
            create_offer(
                session, title=title, category=category, network=NETWORK, external_id=external_id,
                description=f"{title}. Rewards are credited after the network confirms it.",
                status="active", network_payout=network_payout, user_share=Decimal("0.7"),
            )
    return external_ids


def seed(session: Session, settings: Settings) -> dict[str, int]:
    admin_id = _user(session, *ADMIN, "admin", settings)
    offer_ids = _offers(session)
    users = [_user(session, email, name, USER_PASSWORD, "user", settings) for email, name in USERS]
    sales = 0
    for u, user_id in enumerate(users):
        for n, offer in enumerate(offer_ids[: 4 + 2 * u]):
            approved = n % 2 == 0
            outcome = credit_sale(
                session, network=NETWORK, external_id=f"seed-{u}-{n}", user_id=user_id,
                offer_external_id=offer, amount=OFFERS[n][2],
                hold_seconds=0 if approved else settings.sale_hold_seconds,
            )
            if outcome.outcome == "credited":
                sales += 1
                if approved:
                    approve_sale(session, sale_id=outcome.sale_id)  # type: ignore[arg-type]
    return {"admin": admin_id, "sales_created": sales}


@command("seed-demo", "load idempotent demo data (offers, users with sales, an admin)")
def _seed_demo(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.is_production:
        print("seed-demo: refused in production", file=sys.stderr)
        return 2
    ctx = SyncContext.create(settings, pool_size=1)
    try:
        with ctx.transaction() as session:
            result = seed(session, settings)
    finally:
        ctx.close()
    print(f"seed-demo: {len(OFFERS)} offers, {len(USERS)} users, "
          f"{result['sales_created']} new sales", flush=True)
    print(f"admin: {ADMIN[0]} / {ADMIN[2]}", flush=True)
    print(f"users: {', '.join(e for e, _ in USERS)} / {USER_PASSWORD}", flush=True)
    return 0
