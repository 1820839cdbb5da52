#!/usr/bin/env bash
# Install what tests/real/run.sh needs, only if missing; silent when all is
# there. Idempotent; needs root (or sudo) only when something is missing.
set -u

apt_install() {
    [ $# -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
            echo "deps.sh: missing $* and not root" >&2
            return 1
        fi
    fi
    echo "deps.sh: installing $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be absent on a fresh machine: update once if the
    # first attempt fails.
    if ! $sudo apt-get install -y -q -o DPkg::Lock::Timeout=300 "$@" >/dev/null 2>&1; then
        $sudo apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null 2>&1 || true
        $sudo apt-get install -y -q -o DPkg::Lock::Timeout=300 "$@" >/dev/null || {
            echo "deps.sh: could not install $*" >&2
            return 1
        }
    fi
}

need=()
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v perl >/dev/null 2>&1 || need+=(perl)
command -v git >/dev/null 2>&1 || need+=(git)
command -v g++ >/dev/null 2>&1 || need+=(g++)
# The system python3 (a pyenv or virtualenv python3 may come first on PATH):
# run.sh's cpython-suite runs its regression tests.
[ -x /usr/bin/python3 ] || need+=(python3)
apt_install ${need[@]+"${need[@]}"} || exit 1

# Those regression tests come in the Debian package of that version. Ask
# dpkg, not the file system: python3's own stdlib package already ships
# test/libregrtest and test/support, without a single test module.
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || {
    echo "deps.sh: /usr/bin/python3 does not run" >&2
    exit 1
}
if ! dpkg-query -W -f='${Status}' "libpython$pyver-testsuite" 2>/dev/null | grep -q ' installed$'; then
    apt_install "libpython$pyver-testsuite" || exit 1
fi
exit 0
