"""``python -m web`` (what ``savebucks web`` runs): the web process on uvloop."""

from __future__ import annotations

import argparse
import gc
import logging

import uvloop
from aiohttp import web

from common.config import load_settings
from common.logs import configure_logging
from web.app import create_app


async def _freeze_what_start_up_made(app: web.Application) -> None:
    """Move everything start-up made (modules, classes, compiled statements, settings: hundreds
    of thousands of objects that live as long as the process) out of the collector's sight, so
    that a full collection, which a busy process runs every few seconds, walks only what requests
    made since: its pause is a request's tail latency. CPython's own advice for servers
    (``gc.freeze``, after a collection so that no garbage is frozen)."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="savebucks web")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    app = create_app(settings)
    app.on_startup.append(_freeze_what_start_up_made)
    port = args.port or settings.port
    logging.getLogger("savebucks").info("web listening", extra={"port": port})
    web.run_app(
        app, host=args.host, port=port, access_log=None, print=None, loop=uvloop.new_event_loop(),
        shutdown_timeout=10,
    )


if __name__ == "__main__":
    main()
