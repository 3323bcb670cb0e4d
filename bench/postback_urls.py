"""Postback load from wrk: credit postbacks, each a new sale, signed in advance.

Every request of the benchmark must carry its own transaction id and a valid signature, which a
fixed wrk request cannot. The URLs are signed here beforehand (``paths``) and a Lua script hands
each wrk thread its own share of them in turn, so no two requests of one run repeat a transaction
as long as the list outlasts the run (``COUNT`` covers 10 s at well over the rates measured on two
cores). The bare baseline (``bench/bare.py --mode postback``) reads the same parameters.
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.parse

from bench.lib import Result, wrk

SECRET = "bench-secret"
COUNT = 150_000
USERS = 500
# Each thread takes every THREADS-th path from its own offset: shares of the list never overlap.
_LUA = """
local paths = {{}}
for line in io.lines("{file}") do paths[#paths + 1] = line end
local threads = 0
function setup(thread)
    thread:set("offset", threads)
    threads = threads + 1
end
local n = 0
function request()
    local i = (n * {threads} + offset) % #paths + 1
    n = n + 1
    return wrk.format("GET", paths[i])
end
"""


def paths(count: int = COUNT, *, first: int = 0, repeat: bool = False) -> list[str]:
    """Signed ``/api/postbacks/bench`` paths: new sales (a transaction id unique to this call),
    or, with ``repeat``, ``count`` copies of one transaction."""
    from common.postbacks import generic_signature

    run = time.time_ns()
    out = []
    for n in range(first, first + count):
        params = {"user_id": str(1 + n % USERS), "offer_id": "o1",
                  "txn_id": "repeat" if repeat else f"w{run}-{n}", "amount": "2.00", "status": "1"}
        params["sig"] = generic_signature(SECRET, params)
        out.append("/api/postbacks/bench?" + urllib.parse.urlencode(params))
        if repeat:
            return out * count
    return out


def postback_load(base: str, *, connections: int, seconds: int, first: int = 0,
                  repeat: bool = False, threads: int = 2) -> Result:
    """wrk sending the signed postbacks of ``paths`` to ``base``, each once."""
    signed = paths(COUNT if not repeat else 1, first=first, repeat=repeat)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(signed) + "\n")
    try:
        script = _LUA.format(file=listing.name, threads=threads)
        name = "postback, repeats of one txn" if repeat else "postback, new sale each"
        return wrk(name, base + signed[0], connections=connections, seconds=seconds,
                   threads=threads, lua_script=script)
    finally:
        os.unlink(listing.name)
