#!/usr/bin/env bash
# Install what tests/real/run.sh needs, only if missing; silent when all is
# there. Idempotent; needs root (or sudo) only when something is missing.
set -u
need=()
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v perl >/dev/null 2>&1 || need+=(perl)
command -v git >/dev/null 2>&1 || need+=(git)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "deps.sh: missing ${need[*]} and not root" >&2
        exit 1
    fi
fi
echo "deps.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh machine: update once if the
# first attempt fails.
if ! $SUDO apt-get install -y -q -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null 2>&1 || true
    $SUDO apt-get install -y -q -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null || {
        echo "deps.sh: could not install ${need[*]}" >&2
        exit 1
    }
fi
exit 0
