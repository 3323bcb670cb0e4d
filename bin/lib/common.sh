# shellcheck shell=bash
# Shared helpers for bin/run, bin/test and bin/lib/*.sh. Sourced, never run.
# Everything here must be safe under `set -euo pipefail`, which the callers use.

# Repo root from this file's own location, so the helpers work whatever the cwd.
SB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Private state (server data, logs, locks). Git-ignored.
SB_DEV="$SB_ROOT/.dev"
SB_LOGS="$SB_DEV/logs"

# Two locks live on fixed file descriptors: 8 = setup lock, 9 = users lock (see below). Every
# server we start is launched with both closed, or the daemon would hold them forever.

sb_log() { printf 'setup: %s\n' "$*" >&2; }

# Fail with a message; with a log file as second argument, show its tail (CI has no other way to
# see why a server did not start).
sb_die() {
    printf 'setup: ERROR: %s\n' "$1" >&2
    if [[ -n "${2:-}" && -f "$2" ]]; then
        printf 'setup: last lines of %s:\n' "$2" >&2
        tail -n 25 "$2" >&2 || true
    fi
    exit 1
}

sb_is_root() { [[ "$(id -u)" == 0 ]]; }

sb_init_dev() {
    mkdir -p "$SB_DEV" "$SB_LOGS"
    # The postgres user must be able to traverse .dev to reach .dev/pg (a umask of 077 would
    # otherwise make it root-only).
    chmod 0755 "$SB_DEV"
}

# One setup at a time per checkout: two concurrent first runs would otherwise both pip-install
# into the same venv, initdb the same folder, or race creating the role and database.
SB_SETUP_LOCKED=""
sb_lock_setup() {
    [[ -n "$SB_SETUP_LOCKED" ]] && return 0
    sb_init_dev
    exec 8>>"$SB_DEV/setup.lock"
    if ! flock -n 8; then
        sb_log "waiting for another bin/run or bin/test in this checkout to finish its setup"
        flock 8
    fi
    SB_SETUP_LOCKED=1
}
sb_unlock_setup() {
    [[ -n "$SB_SETUP_LOCKED" ]] || return 0
    exec 8>&-
    SB_SETUP_LOCKED=""
}

# Every bin/run and bin/test holds a SHARED lock on .dev/users.lock for its whole life (the fd is
# inherited by pytest, honcho and their children). Before stopping the private servers, a run
# checks that it can take the lock EXCLUSIVELY, i.e. that nobody else is using them.
sb_hold_user_lock() {
    exec 9>>"$SB_DEV/users.lock"
    flock -s 9
}
# True when no other process holds the users lock. Drops this shell's own shared lock first.
sb_servers_unused() {
    exec 9>>"$SB_DEV/users.lock"   # reopening fd 9 closes ours, so only OTHER holders remain
    if flock -x -n 9; then
        exec 9>&-
        return 0
    fi
    exec 9>&-
    return 1
}

# apt-get install, only when we are root and apt exists. `apt-get update` runs once per setup.
SB_APT_UPDATED=""
sb_can_apt() { sb_is_root && command -v apt-get >/dev/null 2>&1; }
sb_apt_install() {
    sb_can_apt || return 1
    local log="$SB_LOGS/apt.log"
    sb_log "installing $* with apt-get (log: ${log#"$SB_ROOT"/})"
    if [[ -z "$SB_APT_UPDATED" ]]; then
        apt-get -o DPkg::Lock::Timeout=300 update </dev/null >>"$log" 2>&1 8>&- 9>&- || return 1
        SB_APT_UPDATED=1
    fi
    # Debian's postinst tries to start the system service; on these images that is blocked (and
    # we never use the system service anyway: we start our own server). Where it is not blocked,
    # the service must not inherit our lock fds 8/9, hence the closes.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
        --no-install-recommends "$@" </dev/null >>"$log" 2>&1 8>&- 9>&-
}

# Is something listening on 127.0.0.1:PORT? (bash's /dev/tcp: no ss/nc needed)
sb_port_busy() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Is PID alive and running with cwd DIR? Both postgres (data dir) and redis (--dir) chdir into
# their own folder, so this tells "our server" apart from a recycled pid or another checkout's.
sb_pid_runs_in() {
    local pid="$1" dir="$2" cwd
    sb_pid_alive "$pid" || return 1
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || return 1
    [[ "$cwd" == "$(readlink -f "$dir")" ]]
}

# Alive and not a zombie. A killed daemon stays a zombie until its parent (often PID 1 here) reaps
# it; for us it is gone.
sb_pid_alive() {
    local state
    [[ "$1" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$1" 2>/dev/null || return 1
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1 || true)"   # after "(comm)"
    [[ "$state" != Z ]]
}

# Send SIG to PID and wait up to ~30 s for it to be gone.
sb_kill_and_wait() {
    local pid="$1" sig="$2" i
    kill "-$sig" "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        sb_pid_alive "$pid" || return 0
        sleep 0.1
    done
    return 1
}

# First free port on 127.0.0.1 from $1 upwards (20 tries). Used when the preferred private port is
# taken by someone else, e.g. another checkout's private server on the same machine.
sb_free_port() {
    local port
    for ((port = $1; port < $1 + 20; port++)); do
        if ! sb_port_busy "$port"; then
            echo "$port"
            return 0
        fi
    done
    return 1
}
