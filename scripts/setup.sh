#!/usr/bin/env bash
# Set up recordkit on a Debian 12 machine: system packages, .venv, editable install.
#
# Idempotent and fast when everything is already in place: apt is only touched when a
# package is missing, and pip only runs when pyproject.toml changed since the last
# successful install (hash stamp in .venv/.recordkit-installed). Prints nothing when
# there is nothing to do.
#
# Environment:
#   PYTHON   interpreter used to create .venv (default: python3)
set -euo pipefail

# System packages (Debian names). Later features append here (e.g. ffmpeg chromium).
#   build-essential + python3-dev: only used when pip has to compile an sdist (no wheel
#   for this platform); cheap to check, painful to discover missing mid-install.
#   postgresql: server binaries; tests start a throwaway cluster when nothing answers
#   on 127.0.0.1:5432 (see tests/support/postgres.py).
#   openssh-server: the SFTP tests start their own sshd; node + npm: the Azure tests' azurite (below).
#   fonts-dejavu-core: the composite's name labels; tesseract-ocr(-eng): a test reads them back off a recording.
APT_PACKAGES="python3-venv python3-pip python3-dev build-essential postgresql curl ffmpeg chromium fonts-dejavu-core"
APT_PACKAGES="$APT_PACKAGES tesseract-ocr tesseract-ocr-eng"
APT_PACKAGES="$APT_PACKAGES openssh-server"
#   nginx-light + libnginx-mod-rtmp: the RTMP output's tests publish to a throwaway nginx of their own
#   (tests/support/rtmp_server.py); Debian's packaged nginx service is not used.
APT_PACKAGES="$APT_PACKAGES nginx-light libnginx-mod-rtmp"
# A machine may have Node.js from elsewhere (nodesource bundles npm, and Debian's npm would conflict with it).
command -v npm >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES nodejs npm"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.recordkit-installed"
PYTHON="${PYTHON:-python3}"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- system packages ---------------------------------------------------------------
pkg_installed() {
    # `dpkg -s` also succeeds for removed-but-not-purged packages, so check the status line.
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

if command -v dpkg >/dev/null 2>&1; then
    missing=()
    for pkg in $APT_PACKAGES; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        if [[ $(id -u) -eq 0 ]]; then
            SUDO=()
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO=(sudo -n)
        else
            die "missing Debian packages: ${missing[*]}
  run as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}
  then re-run:  $0"
        fi
        log "installing Debian packages: ${missing[*]}"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"
    fi
else
    log "warning: dpkg not found (not Debian?); skipping system package checks"
fi

# --- virtualenv ----------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is $("$PYTHON" -V 2>&1); recordkit needs Python >= 3.11"
    log "creating $VENV"
    rm -f "$STAMP"
    "$PYTHON" -m venv "$VENV"
fi

# --- project install -----------------------------------------------------------------
# The stamp covers pyproject.toml and the venv's interpreter, so a rebuilt venv or a
# dependency change triggers a reinstall; anything else is a no-op.
want="$( { sha256sum pyproject.toml; readlink -f "$VENV/bin/python"; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    log "installing recordkit (editable, with test extras) into $VENV"
    # No --index-url/--constraint here on purpose: the machine's pip config applies.
    # --no-compile: byte-compiling every installed module (botocore alone is thousands) took 17 of its 58 s here;
    # Python compiles what it imports on first use instead.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile -e '.[test]'
    printf '%s\n' "$want" > "$STAMP.tmp"
    mv -f "$STAMP.tmp" "$STAMP"
    log "done"
fi

# --- test servers from npm ------------------------------------------------------------
# azurite (the Azure Blob emulator of the storage tests), in .tools/ of this checkout. 3.35.0 runs on the
# Node.js 18 of Debian 12; later releases want Node 21+.
AZURITE_VERSION=3.35.0
AZURITE="$ROOT/.tools/node_modules/.bin/azurite-blob"
if [[ ! -x "$AZURITE" ]] || [[ "$(cat "$ROOT/.tools/.azurite-version" 2>/dev/null)" != "$AZURITE_VERSION" ]]; then
    log "installing azurite $AZURITE_VERSION into .tools/"
    mkdir -p "$ROOT/.tools"
    npm install --silent --no-audit --no-fund --prefix "$ROOT/.tools" "azurite@$AZURITE_VERSION" >/dev/null
    printf '%s\n' "$AZURITE_VERSION" > "$ROOT/.tools/.azurite-version"
fi
