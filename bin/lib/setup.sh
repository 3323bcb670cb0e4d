# shellcheck shell=bash
# Sourced by bin/test and bin/run: makes .venv current and the servers reachable, then exports
#   DATABASE_URL  postgresql+psycopg://savebucks@127.0.0.1:54329/savebucks  (unless already set)
#   REDIS_URL     redis://127.0.0.1:63790/0                                 (unless already set)
# A DATABASE_URL / REDIS_URL set by the caller is used as is and no private server is started for
# it. CELERY_BROKER_URL is left alone: passed through when the caller set it, otherwise the app
# defaults it to REDIS_URL. (If a preferred private port is held by another process, e.g. another
# checkout's private server, the next free port is used and the URL says so.)
#
# Prints one short line per step ("setup: ...") on stderr; tool output goes to logs under .dev/.

# shellcheck source=bin/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=bin/lib/venv.sh
. "$SB_ROOT/bin/lib/venv.sh"
# shellcheck source=bin/lib/servers.sh
. "$SB_ROOT/bin/lib/servers.sh"
# shellcheck source=bin/lib/console.sh
. "$SB_ROOT/bin/lib/console.sh"

sb_lock_setup        # one setup at a time in this checkout
sb_hold_user_lock    # we use the private servers until this process (and its children) exits
sb_setup_venv
if [[ -n "${DATABASE_URL:-}" ]]; then
    sb_log "postgres: using DATABASE_URL from the environment"
else
    sb_pg_up
fi
if [[ -n "${REDIS_URL:-}" ]]; then
    sb_log "redis: using REDIS_URL from the environment"
else
    sb_redis_up
fi
export DATABASE_URL REDIS_URL
sb_build_console
sb_unlock_setup
