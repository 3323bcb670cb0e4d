"""The ``savebucks`` command: runs the processes and the chores.

``web``, ``worker``, ``beat`` and ``flower`` replace this process with the real one (so signals
reach it directly under honcho or a supervisor); the chores run here.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from common.config import ConfigError, load_settings
from common.taskqueue import QUEUES

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Command, Callable[[argparse.ArgumentParser], object] | None]] = {}


def command(
    name: str, help: str, arguments: Callable[[argparse.ArgumentParser], object] | None = None
) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        _COMMANDS[name] = (help, fn, arguments)
        return fn

    return register


def _exec(argv: Sequence[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], list(argv))


def _celery(*args: str) -> list[str]:
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    return [celery, "-A", "workers.celery_app", *args]


def _state_dir() -> Path:
    path = Path.cwd() / ".dev"
    path.mkdir(exist_ok=True)
    return path


@command("web", "run the web process", lambda p: p.add_argument("--port", type=int))
def _web(args: argparse.Namespace) -> int:
    load_settings()  # refuse to start on bad configuration, with the one-line message
    extra = ["--port", str(args.port)] if args.port else []
    return _exec([sys.executable, "-m", "web", *extra])


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queues", default=",".join(QUEUES), help="comma-separated queues")
    parser.add_argument("--concurrency", type=int, default=2)


@command("worker", "run a Celery worker", _worker_arguments)
def _worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    return _exec(
        _celery(
            "worker", "-Q", args.queues, "-c", str(args.concurrency),
            "--loglevel", settings.log_level, "-n", "savebucks@%h",
        )
    )


@command("beat", "run Celery beat (exactly one per deployment)")
def _beat(args: argparse.Namespace) -> int:
    settings = load_settings()
    schedule = _state_dir() / "celerybeat-schedule"
    return _exec(_celery("beat", "--loglevel", settings.log_level, "-s", str(schedule)))


@command("flower", "run Flower behind basic auth")
def _flower(args: argparse.Namespace) -> int:
    settings = load_settings()
    auth = settings.flower_basic_auth
    if auth is None:  # development only: the settings refuse to start without it elsewhere
        auth = f"admin:{secrets.token_urlsafe(12)}"
        print(f"flower: http://127.0.0.1:{settings.flower_port}  basic auth {auth}", flush=True)
    return _exec(
        _celery(
            "flower", f"--port={settings.flower_port}", "--address=127.0.0.1",
            f"--basic-auth={auth}", "--purge_offline_workers=60",
        )
    )


@command("migrate", "apply database migrations (alembic upgrade head)")
def _migrate(args: argparse.Namespace) -> int:
    from common.migrate import upgrade

    settings = load_settings()
    upgrade(settings.sqlalchemy_url)
    print("migrate: database is at head", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import common.commands  # noqa: F401  (registers the chores)

    parser = argparse.ArgumentParser(prog="savebucks", description="SaveBucks backend")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _, arguments) in sorted(_COMMANDS.items()):
        sub_parser = sub.add_parser(name, help=help_text)
        if arguments:
            arguments(sub_parser)
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command][1](args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
