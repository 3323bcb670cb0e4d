"""A whole SaveBucks deployment on loopback, for the cluster tests (``tests/cluster``) and the
benchmarks that run their longer forms (``bench/cluster_drills.py``, ``bench/soak.py``).

What runs, every process started and stopped here, each start and stop bounded in time:

    clients -> nginx (round robin, HTTP and WebSocket, no stickiness)
            -> web A, web B (``python -m web``)
    web, workers, beat -> PgBouncer (transaction pooling) -> PostgreSQL
    web, workers, beat -> RabbitMQ (the Celery broker), Redis (pub/sub, limits, caches)
    worker 1, worker 2 (every queue), beat (exactly one)

PostgreSQL, Redis and RabbitMQ are private instances in the cluster's own folder, on free ports:
the drills stop and restart them, and the machine's shared servers are never touched. nginx and
PgBouncer are Debian's packages (``bin/test`` installs them), run in the foreground with a
configuration written here. Migrations and ``savebucks check-ledger`` reach PostgreSQL directly
(a migration's transaction-scoped advisory lock would work through PgBouncer too, but an operator
tool has no reason to take a pooled slot).
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from tests.fixtures.databases import drop_database
from tests.fixtures.servers import (
    PrivatePostgres,
    PrivateRedis,
    pg_bin,
    port_open,
    redis_bin,
)

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_GRACE = 10.0
# At the end of a run nothing needs a warm shutdown: what has not stopped by then is killed.
CLOSE_GRACE = 3.0
DATABASE = "sb_cluster"
NETWORK, SECRET = "clusternet", "cluster-secret-0123456789"
ADMIN_EMAIL = "ops@cluster.example"
# A user's sockets across both instances; low enough for a test to reach it.
MAX_SOCKETS_PER_USER = 4
WORKER_CONCURRENCY = 2
# PgBouncer's server connections per database and user: both webs' request pools and write
# engines and the workers' share this many PostgreSQL connections (docs/operations.md).
BOUNCER_POOL = 40
BOUNCER_MAX_CLIENTS = 1000


def missing_binaries() -> list[str]:
    """What this machine lacks to run a cluster (empty when it can)."""
    missing = [name for name in ("nginx", "pgbouncer") if _sbin(name) is None]
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        missing.append("rabbitmq-server")
    if pg_bin() is None:
        missing.append("postgresql")
    if redis_bin() is None:
        missing.append("redis-server")
    return missing


_HANDED_OUT: set[int] = set()


def stable_port() -> int:
    """A free port below the kernel's ephemeral range (32768 and up on Linux): a server that is
    restarted must find its port free again, and while it is down any client's outgoing
    connection could be given a port from the ephemeral range (seen here: RabbitMQ could not
    listen again after a restart)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        if port in _HANDED_OUT:  # not listening yet, but promised to another server
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port between 20000 and 32000")


def _sbin(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _as_user(user: str) -> list[str]:
    """PgBouncer refuses to run as root, like PostgreSQL."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (up to the hard limit);
    children inherit it. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _wait(predicate: Callable[[], bool], timeout: float, what: str,
          proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: exited with {proc.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready within {timeout}s: {_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-3000:]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


@dataclass
class Service:
    """One process of the cluster, in a process group of its own (a kill takes its children)."""

    name: str
    argv: list[str]
    log: Path
    ready: Callable[[], bool]
    env: dict[str, str] | None = None
    cwd: Path = ROOT
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen[bytes] | None = None
    # Where the log ended when this run was launched: a readiness line is looked for after it.
    log_offset: int = 0

    def logged_since_launch(self, marker: bytes) -> bool:
        if not self.log.exists():
            return False
        with open(self.log, "rb") as log:
            log.seek(self.log_offset)
            return marker in log.read()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        _wait(self.ready, timeout, self.name, self.proc, self.log)

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """The stop signal, then SIGKILL to the group after ``grace`` seconds."""
        if not self.alive:
            return
        self.signal(self.stop_signal)
        self.wait_gone(grace)

    def wait_gone(self, grace: float = STOP_GRACE) -> None:
        """Wait up to ``grace`` seconds for the process to end, then SIGKILL its group."""
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the whole group (a crash), and reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def close(self) -> None:
        self.stop()


class PgBouncer(Service):
    def __init__(self, folder: Path, pg: PrivatePostgres, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        ini, users = folder / "pgbouncer.ini", folder / "userlist.txt"
        users.write_text('"postgres" ""\n')
        # The app's startup ``options`` (statement_timeout, timezone) are not passed on by
        # PgBouncer: it refuses unknown startup parameters unless told to ignore them, and sets
        # these two on each server connection instead.
        ini.write_text(f"""[databases]
* = host=127.0.0.1 port={pg.port} timezone=UTC connect_query='SET statement_timeout = 15000'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = {BOUNCER_POOL}
max_client_conn = {BOUNCER_MAX_CLIENTS}
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
server_check_delay = 1
server_login_retry = 1
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
""")
        if os.geteuid() == 0:
            for path in (folder, ini, users):
                shutil.chown(path, "postgres", "postgres")
        binary = _sbin("pgbouncer") or "pgbouncer"
        super().__init__("pgbouncer", [*_as_user("postgres"), binary, str(ini)],
                         folder / "stdout.log", lambda: port_open(port), stop_signal=signal.SIGINT)


class RabbitMQ(Service):
    """A node of its own: its name, ports, data and logs under ``folder``, no plugins (so no
    management listener to collide with the machine's), guest allowed from loopback."""

    def __init__(self, folder: Path, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        config, env_file, plugins = folder / "rabbitmq.conf", folder / "env.conf", folder / "plugins"
        config.write_text(f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n")
        env_file.write_text("")  # not Debian's /etc/rabbitmq/rabbitmq-env.conf (the shared node's)
        plugins.write_text("[].\n")
        env = {
            **os.environ, "HOME": str(folder),  # its own Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": str(env_file), "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_NODENAME": f"sbcluster{os.getpid()}x{port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(stable_port()), "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"), "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        }
        # The script itself, not /usr/sbin's wrapper, which switches to the rabbitmq user.
        super().__init__("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], folder / "stdout.log",
                         lambda: port_open(port), env=env, cwd=folder)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"


class Nginx(Service):
    """nginx in the foreground, round robin over the web instances, WebSocket upgrades proxied,
    no stickiness. A web instance that refuses connections is skipped for 2 s."""

    def __init__(self, folder: Path, port: int, upstreams: list[int]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        conf = folder / "nginx.conf"
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams)
        temp = "\n".join(f"  {kind}_temp_path {folder / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(f"""{user}
daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
{temp}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream savebucks {{
{servers}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{port};
    proxy_connect_timeout 1s;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    location /ws {{
      proxy_pass http://savebucks;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }}
    location / {{
      proxy_pass http://savebucks;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502;
    }}
  }}
}}
""")
        binary = _sbin("nginx") or "nginx"
        super().__init__("nginx", [binary, "-p", str(folder), "-e", str(folder / "error.log"),
                                   "-c", str(conf)],
                         folder / "stdout.log", lambda: port_open(port), stop_signal=signal.SIGQUIT)


@dataclass
class Seed:
    network: str
    offer_external_id: str
    admin_id: int
    user_ids: list[int] = field(default_factory=list)


@dataclass
class Cluster:
    """Start with ``start()`` (or ``running_cluster()``), stop everything with ``close()``."""

    folder: Path
    webs: int = 2
    workers: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    pg: PrivatePostgres = field(init=False)
    redis: PrivateRedis = field(init=False)
    rabbit: RabbitMQ = field(init=False)
    bouncer: PgBouncer = field(init=False)
    web: list[Service] = field(init=False, default_factory=list)
    worker: list[Service] = field(init=False, default_factory=list)
    beat: Service = field(init=False)
    nginx: Nginx = field(init=False)
    seed: Seed | None = None
    _engine: Engine | None = None

    def __post_init__(self) -> None:
        os.chmod(self.folder, 0o755)  # the postgres user reaches its folders
        self.pg = PrivatePostgres(self.folder / "pg", port=stable_port())
        self.redis = PrivateRedis(self.folder / "redis", port=stable_port())
        self.rabbit = RabbitMQ(self.folder / "rabbitmq", stable_port())
        self.bouncer = PgBouncer(self.folder / "pgbouncer", self.pg, stable_port())
        web_ports = [stable_port() for _ in range(self.webs)]
        self.web = [self._web(i, port) for i, port in enumerate(web_ports)]
        self.worker = [self._celery(f"worker{i}", "worker", "-Q", ",".join(_queues()),
                                    "-c", str(WORKER_CONCURRENCY), "-P", "prefork",
                                    "--without-mingle", "--without-gossip",
                                    "-n", f"w{i}x{os.getpid()}@%h")
                       for i in range(self.workers)]
        self.beat = self._celery("beat", "beat", "-s", str(self.folder / "celerybeat-schedule"))
        self.nginx = Nginx(self.folder / "nginx", stable_port(), web_ports)

    # Addresses -------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """The load balancer: what every client talks to."""
        return f"http://127.0.0.1:{self.nginx.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.nginx.port}/ws"

    def web_base(self, i: int) -> str:
        return f"http://127.0.0.1:{self.web_port(i)}"

    def web_port(self, i: int) -> int:
        return int(self.web[i].argv[self.web[i].argv.index("--port") + 1])

    @property
    def direct_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.pg.port}/{DATABASE}"

    @property
    def pooled_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.bouncer.port}/{DATABASE}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every SaveBucks process of the cluster."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("POSTBACK_", "RATE_LIMIT_", "PYTEST", "COV_"))}
        env.update(
            APP_ENV="test",
            DATABASE_URL=self.pooled_url,
            DATABASE_PREPARE_THRESHOLD="none",  # PgBouncer 1.18 in transaction mode
            REDIS_URL=self.redis.url(0),
            REDIS_PREFIX="sbcluster",
            CELERY_BROKER_URL=self.rabbit.url,
            JWT_SECRET="cluster-secret-that-is-long-enough-for-hs256-0123",
            FLOWER_BASIC_AUTH="ops:cluster-password",
            BCRYPT_ROUNDS="4",
            LOG_LEVEL="WARNING",
            LOG_JSON="true",
            TRUSTED_PROXIES="127.0.0.1",
            WS_MAX_SOCKETS_PER_USER=str(MAX_SOCKETS_PER_USER),
            # The drills' load is far above a network's real callback rate.
            RATE_LIMIT_POSTBACK="1000000/minute",
            RATE_LIMIT_POSTBACK_IP="1000000/minute",
            RATE_LIMIT_WITHDRAWAL="1000000/minute",
            # Each drill member earns hundreds of conversions a minute by design; at the default
            # (30 an hour) postback_velocity would hold their withdrawals for a risk review.
            RISK_POSTBACK_VELOCITY="100000",
            PAYOUT_SANDBOX_LATENCY_MS="5",
            # What payouts.recover counts as stuck (a pending payment whose enqueue was lost).
            PAYOUT_STUCK_SECONDS="5",
            # Credits are approved by the beat's next sales.approve_due (10 s), not in a week.
            SALE_HOLD_SECONDS="0",
            DB_POOL_SIZE="5",
            DB_POOL_MAX_OVERFLOW="5",
            **{f"POSTBACK_SECRET_{NETWORK.upper()}": SECRET},
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def _web(self, i: int, port: int) -> Service:
        base = f"http://127.0.0.1:{port}"
        return Service(f"web{i}", [sys.executable, "-m", "web", "--host", "127.0.0.1", "--port", str(port)],
                       self.folder / f"web{i}.log", lambda: http_ok(base + "/health/live"))

    def _celery(self, name: str, *args: str) -> Service:
        celery = str(Path(sys.executable).parent / "celery")
        # Ready once it has said so in its log (a worker: "ready."; beat: "beat: Starting").
        marker = b"ready." if args[0] == "worker" else b"beat: Starting"
        service = Service(name, [celery, "-A", "workers.celery_app", *args, "--loglevel", "INFO"],
                          self.folder / f"{name}.log", lambda: False)
        service.ready = lambda: service.logged_since_launch(marker)
        return service

    # Life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Everything that can start at once does (the machine has two cores, and most of a
        start is waiting): the servers, then PgBouncer and the schema, then the app processes."""
        self.rabbit.launch()
        self.pg.start()
        self.redis.start()
        self.bouncer.start()
        self._prepare()
        self.rabbit.wait_ready(60)
        self.start_app()
        self.nginx.start()

    def start_app(self) -> None:
        env = self.env()
        services = (*self.web, *self.worker, self.beat)
        for service in services:
            service.env = env
            service.log.unlink(missing_ok=True)
            service.launch()
        for service in services:
            service.wait_ready(90)

    def _prepare(self) -> None:
        """Create and migrate the database, with an admin and an active offer."""
        admin = create_engine(self.pg.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            drop_database(conn, DATABASE)
            conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        admin.dispose()
        self.savebucks("migrate")
        from tests.fixtures.factories import make_user
        from tests.fixtures.money_factories import make_offer

        engine = create_engine(self.direct_url)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            admin_user = make_user(session, email=ADMIN_EMAIL, role="admin")
            make_offer(session, network=NETWORK, external_id="cluster-offer",
                       network_payout=Decimal(10))
        engine.dispose()
        self.seed = Seed(NETWORK, "cluster-offer", admin_user.id)

    def savebucks(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A ``savebucks`` command against PostgreSQL directly (migrate, check-ledger)."""
        env = self.env(DATABASE_URL=self.direct_url, DATABASE_PREPARE_THRESHOLD="1")
        savebucks = str(Path(sys.executable).parent / "savebucks")
        return subprocess.run([savebucks, *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def engine(self) -> Engine:
        """The tests' own engine on PostgreSQL directly (one, small: PostgreSQL's connections
        are counted, see docs/operations.md)."""
        if self._engine is None:
            self._engine = create_engine(self.direct_url, pool_size=2, max_overflow=2,
                                         pool_pre_ping=True)
        return self._engine

    def close(self) -> None:
        """Everything stopped: the app processes at once, then the servers; whatever does not
        stop in time is killed."""
        if self._engine is not None:
            self._engine.dispose()
        app = (self.nginx, self.beat, *self.worker, *self.web)
        for service in app:
            service.signal(service.stop_signal)
        for service in app:
            service.wait_gone(CLOSE_GRACE)
        for server in (self.bouncer, self.rabbit, self.redis, self.pg):
            with contextlib.suppress(Exception):
                server.close()

    def logs(self) -> str:
        """The tails of every process's log (for a failing test's report)."""
        parts = []
        for service in (*self.web, *self.worker, self.beat, self.nginx):
            parts.append(f"--- {service.name}\n{_tail(service.log)[-1500:]}")
        return "\n".join(parts)


def _queues() -> tuple[str, ...]:
    from common.taskqueue import QUEUES

    return QUEUES


@contextlib.contextmanager
def running_cluster(**kwargs: object) -> Iterator[Cluster]:
    """A started cluster in a temporary folder, stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="sb-cluster-"))
    cluster = Cluster(folder, **kwargs)  # type: ignore[arg-type]
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        if not os.environ.get("SB_CLUSTER_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)

