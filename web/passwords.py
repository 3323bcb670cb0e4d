"""bcrypt off the event loop: a bounded thread pool (bcrypt releases the GIL while it hashes).

A burst of sign-ins queues here, on ``PASSWORD_HASH_WORKERS`` threads, instead of stalling every
other request of the process. ``verify`` checks against a dummy hash of the same cost when the
account does not exist, so an unknown email costs what a wrong password costs.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiohttp import web

from common.config import Settings
from common.security.passwords import hash_password, verify_password
from web.keys import PASSWORDS, SETTINGS

T = TypeVar("T")


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self.rounds = settings.bcrypt_rounds
        self.executor = ThreadPoolExecutor(
            max_workers=settings.password_hash_workers, thread_name_prefix="bcrypt"
        )
        self._dummy = ""

    async def open(self) -> None:
        self._dummy = await self.hash(secrets.token_urlsafe(18))

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._run(lambda: hash_password(password, rounds=self.rounds))

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check ``password``; with no stored hash, spend the same time and answer False."""
        if hashed is None:
            await self._run(verify_password, password, self._dummy)
            return False
        return await self._run(verify_password, password, hashed)


async def passwords_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the hashing pool, and the dummy hash made at the configured cost."""
    hasher = PasswordHasher(app[SETTINGS])
    await hasher.open()
    app[PASSWORDS] = hasher
    yield
    hasher.close()
