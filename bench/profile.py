"""Where a hot path's server CPU goes: py-spy samples the real web process while wrk loads one
route, and the top frames are printed as text (self time and time including callees), with the
server's CPU per request beside them.

    .venv/bin/python bench/profile.py --path me|offers|click|postback [--seconds 10] [--top 25]
        [--connections 64]

py-spy (the ``dev`` extra) attaches to the server process from outside, so the profiled process
runs the same code as in the benchmarks. Attaching needs ptrace (root, or
``kernel.yama.ptrace_scope=0``). Every request goes to 127.0.0.1, bounded in time.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import auth, clicks, money
from bench.auth import _cpu_seconds, _server_pid
from bench.lib import PYTHON, ROOT, Result, Variant, load, prepare_database, server, web_server
from bench.postback_urls import postback_load

RATE = 500  # samples per second


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed (pip install -e '.[dev]')")
    return found


Target = tuple[dict[str, str], str, dict[str, object], dict[str, object]]


def _target(path: str) -> Target:
    """The environment (database prepared), URL path and load options of one hot path, and the
    load options of its bare baseline."""
    if path == "me":
        env = auth._env()
        user_id = auth._prepare(env)
        headers = {"Authorization": f"Bearer {auth._token(env, user_id)}"}
        return env, "/api/auth/me", {"headers": headers}, {"headers": headers}
    if path == "click":  # many members, as bench/clicks.py loads it
        env = clicks._env()
        member_sets, offer_id = clicks._prepare(env, 4096)
        bare = [Variant(f"offer_id={offer_id}&user_id={u}", {}) for u in member_sets[0]]
        return (env, f"/api/offers/{offer_id}/click",
                {"method": "POST", "rotate": clicks._members(env, member_sets[1])},
                {"method": "POST", "rotate": bare})
    env = money._env(RATE_LIMIT_POSTBACK="10000000/minute",
                     RATE_LIMIT_POSTBACK_IP="10000000/minute")
    money._seed(prepare_database(env), users=1500)
    if path == "offers":
        return env, "/api/offers?category=games&limit=20", {}, {}
    return env, "", {}, {}


@contextlib.contextmanager
def _bare(path: str, env: dict[str, str], route: str) -> Iterator[str]:
    """The path's bare baseline server; yields ``base|route`` (its own route and query)."""
    if path == "me":
        argv, bare_route = ["--mode", "sql", "--sql", auth.PROFILE_SQL], "/bare?id=1"
    elif path == "offers":
        argv, bare_route = ["--mode", "sql", "--sql", money.offers_sql()], (
            "/bare?category=games&limit=20&offset=0")
    elif path == "click":
        argv, bare_route = ["--mode", "click"], "/bare"
    else:
        argv, bare_route = ["--mode", "postback"], ""
    with server([PYTHON, "bench/bare.py", *argv], env=env) as base:
        yield f"{base}|{bare_route}"


# py-spy names a module by its code's file name, absolute or relative to the server's folder.
_OURS = re.compile(r"\((?:" + re.escape(str(ROOT)) + r"/)?(?:common|web|bench)/")


def _short(frame: str) -> str:
    """``function (file.py)`` of py-spy's ``function (path/file.py:line)``."""
    if " (" not in frame:
        return frame
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]})"


def _frames(raw: str, top: int, requests: int) -> str:
    """Self and inclusive time per request of each function, from py-spy's collapsed stacks
    (samples taken while the thread held the GIL: CPU spent running Python)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
        for frame in {_short(f) for f in stack.split(";") if _OURS.search(f)}:
            ours[frame] += n
    per = 1e6 / RATE / max(requests, 1)
    lines = [f"{total} samples while holding the GIL, {total * per:.0f} us per request", "",
             "self us/req   frame"]
    lines += [f"{n * per:8.1f}   {f}" for f, n in own.most_common(top)]
    lines += ["", "incl us/req   frame"]
    lines += [f"{n * per:8.1f}   {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "incl us/req   frame of this project (common/, web/, bench/)"]
    lines += [f"{n * per:8.1f}   {f}" for f, n in ours.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", choices=["me", "offers", "click", "postback"], required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--bare", action="store_true",
                        help="profile the bare baseline of the path instead (bench/bare.py)")
    args = parser.parse_args()
    env, route, options, bare_options = _target(args.path)
    serve = _bare(args.path, env, route) if args.bare else web_server(env)
    if args.bare:
        options = bare_options
    with serve as base, tempfile.TemporaryDirectory() as tmp:
        if args.bare:
            base, route = base.split("|", 1)
        pid = _server_pid(base)
        warm = {k: v for k, v in options.items() if k != "headers"}
        if args.path == "postback":
            postback_load(base, connections=8, seconds=2, first=0)
        else:
            load("warm-up", base + route, seconds=2, connections=8, headers=options.get("headers"),
                 **warm)  # type: ignore[arg-type]
        raw = os.path.join(tmp, "raw.txt")
        spy = subprocess.Popen([_py_spy(), "record", "-p", str(pid), "-r", str(RATE), "--gil",
                                "-d", str(args.seconds), "-f", "raw", "-o", raw, "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = _cpu_seconds(pid)
        result: Result
        if args.path == "postback":
            result = postback_load(base, connections=50, seconds=args.seconds, first=10**6)
        else:
            result = load(args.path, base + route, seconds=args.seconds,
                          connections=args.connections, **options)  # type: ignore[arg-type]
        spent = _cpu_seconds(pid) - before
        spy.wait(args.seconds + 30)
        text = Path(raw).read_text() if Path(raw).exists() else ""
    print(f"{args.path}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
          f"server CPU {spent / max(result.requests, 1) * 1e6:.0f} us/req, "
          f"{result.errors} errors")
    print(_frames(text, args.top, result.requests))


if __name__ == "__main__":
    main()
