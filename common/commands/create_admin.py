"""``savebucks create-admin --email E``: make (or promote) the operator's admin account.

The password comes from ``SAVEBUCKS_ADMIN_PASSWORD`` or, on a terminal, a prompt. Running it again
updates the same account (promotes it, re-activates it, sets the password): never a second admin.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from common.cli import command
from common.config import Settings, load_settings
from common.security.passwords import MAX_LENGTH, MIN_LENGTH, hash_password
from common.services.accounts import ensure_admin
from common.uow import SyncContext


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", default="Administrator")


def _password(settings: Settings) -> str | None:
    if settings.savebucks_admin_password:
        return settings.savebucks_admin_password
    if not sys.stdin.isatty():
        print("create-admin: set SAVEBUCKS_ADMIN_PASSWORD or run on a terminal", file=sys.stderr)
        return None
    first = getpass.getpass("Admin password: ")
    if getpass.getpass("Again: ") != first:
        print("create-admin: the passwords differ", file=sys.stderr)
        return None
    return first


@command("create-admin", "create or promote an admin (password: SAVEBUCKS_ADMIN_PASSWORD or prompt)",
         _arguments)
def _create_admin(args: argparse.Namespace) -> int:
    settings = load_settings()
    email = args.email.strip()
    if "@" not in email or len(email) > 254:
        print("create-admin: --email is not an email address", file=sys.stderr)
        return 2
    password = _password(settings)
    if password is None:
        return 2
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        print(f"create-admin: the password must have {MIN_LENGTH}..{MAX_LENGTH} characters",
              file=sys.stderr)
        return 2
    password_hash = hash_password(password, rounds=settings.bcrypt_rounds)
    ctx = SyncContext.create(settings, pool_size=1)
    try:
        with ctx.transaction() as session:
            user, created = ensure_admin(
                session, email=email, password_hash=password_hash, name=args.name.strip()[:100]
            )
    finally:
        ctx.close()
    print(f"create-admin: {'created' if created else 'updated'} admin {user.email} (id {user.id})",
          flush=True)
    return 0
