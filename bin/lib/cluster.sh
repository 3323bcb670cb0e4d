# shellcheck shell=bash
# The servers the cluster tests (tests/cluster, marker `cluster`) run besides PostgreSQL and
# Redis: nginx (the load balancer), PgBouncer and RabbitMQ, from Debian's packages. The tests
# start private instances of them; nothing here starts a service. Sourced by bin/test.
#
# Installed with apt when missing and possible (root, apt present: CI); otherwise the cluster tests
# skip themselves, naming what is missing, and this says so loudly first.

sb_cluster_tools() {
    local missing=() tool
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
    [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
    [[ ${#missing[@]} == 0 ]] && return 0
    if sb_apt_install "${missing[@]}"; then
        return 0
    fi
    for tool in "${missing[@]}"; do
        sb_log "WARNING: ${tool} is missing and could not be installed: THE CLUSTER TESTS WILL BE SKIPPED"
    done
}
