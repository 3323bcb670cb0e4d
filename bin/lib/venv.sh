# shellcheck shell=bash
# The project's virtualenv (.venv), built from requirements.lock. Sourced by bin/lib/setup.sh.
#
# The lock is pip-compile output with hashes, so `--require-hashes` installs exactly what was
# reviewed; the project itself then goes in editable with --no-deps (its deps are all in the lock).
# A stamp file holds the sha256 of requirements.lock + pyproject.toml: when it matches, nothing is
# installed and the step costs a few milliseconds.

# First python >= 3.11 on PATH: python3.11 (the lock was compiled for it), then python3.
sb_find_python() {
    local cand
    for cand in python3.11 python3 python3.12 python3.13; do
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

sb_lock_sha() {
    cat "$SB_ROOT/requirements.lock" "$SB_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1
}

sb_setup_venv() {
    local venv="$SB_ROOT/.venv" log="$SB_LOGS/pip.log" want py
    local stamp="$venv/.lock-sha" pip=("$venv/bin/python" -m pip)
    want="$(sb_lock_sha)"

    # A venv whose python no longer runs or is too old (pyenv version removed, made by hand with
    # another python) is rebuilt rather than patched.
    if [[ -e "$venv" ]] &&
        ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        sb_log "venv: .venv has no working python >= 3.11; recreating it"
        rm -rf "$venv"
    fi
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        sb_log "venv ok"
        return 0
    fi

    : >"$log"   # one install's output at a time, shown on failure
    if [[ ! -x "$venv/bin/python" ]]; then
        py="$(sb_find_python)" || sb_die "need Python >= 3.11 on PATH (python3.11 or python3)"
        sb_log "venv: creating .venv with $py"
        "$py" -m venv "$venv" >>"$log" 2>&1 || sb_die "python -m venv failed" "$log"
    fi
    sb_log "venv: installing requirements.lock (log: .dev/logs/pip.log)"
    rm -f "$stamp"   # a failed install must not look finished next time
    "${pip[@]}" install --upgrade pip >>"$log" 2>&1 || sb_die "pip upgrade failed" "$log"
    "${pip[@]}" install --require-hashes -r "$SB_ROOT/requirements.lock" >>"$log" 2>&1 ||
        sb_die "pip install -r requirements.lock failed" "$log"
    "${pip[@]}" install --no-deps -e "$SB_ROOT" >>"$log" 2>&1 ||
        sb_die "pip install -e . failed" "$log"
    printf '%s\n' "$want" >"$stamp"
    sb_log "venv ok (installed)"
}
