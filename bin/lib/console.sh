# shellcheck shell=bash
# The console's front end (console/, docs/console.md): `npm ci` from console/package-lock.json
# when the lock changed, then the esbuild build into console/dist/ (under a second). Sourced by
# bin/lib/setup.sh. Node and npm come from Debian's packages when missing; Chromium (the browser
# tests' browser, tests/web/console) too, for bin/test only.

sb_build_console() {
    local dir="$SB_ROOT/console" log="$SB_LOGS/console.log" want stamp
    if ! command -v npm >/dev/null 2>&1; then
        sb_apt_install nodejs npm || sb_die "the console needs node and npm (apt-get install nodejs npm)" "$SB_LOGS/apt.log"
    fi
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    stamp="$dir/node_modules/.lock-sha"
    : >"$log"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        sb_log "console: npm ci (log: .dev/logs/console.log)"
        (cd "$dir" && npm ci --no-audit --no-fund) >>"$log" 2>&1 || sb_die "npm ci failed" "$log"
        printf '%s\n' "$want" >"$stamp"
    fi
    (cd "$dir" && node build.mjs) >>"$log" 2>&1 || sb_die "the console build failed" "$log"
    sb_log "console built ($(grep -o 'first load.*' "$log"))"
}

# /usr/bin/chromium for the browser tests (with a font for the screenshots); when it cannot be
# installed they skip, loudly.
sb_ensure_chromium() {
    [[ -x /usr/bin/chromium ]] && return 0
    sb_apt_install chromium fonts-liberation || sb_log "console: WARNING: no /usr/bin/chromium and apt-get could not install it; the browser tests will be skipped"
}
