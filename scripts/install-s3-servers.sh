#!/usr/bin/env bash
# Installs the S3 servers the integration tests run against, without Docker:
#   - MinIO, built from source with `go install` (the project publishes no module tags: pinned by
#     pseudo-version), into .tools/bin/minio
#   - LocalStack (S3 only), localstack-core from PyPI in the venv .tools/localstack-venv
#   - moto server (a second Python emulator; does not validate checksums), in .tools/moto-venv
# Idempotent: a component whose pinned version is already installed is left alone.
# Usage: bash scripts/install-s3-servers.sh [minio] [localstack] [moto]   (default: all three)
set -euo pipefail

# Pins. MinIO: the last commit of github.com/minio/minio (archived); builds with Go >= 1.24,
# supports CRC32C FULL_OBJECT multipart and If-None-Match.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
# LocalStack: 4.14.x is the last line that runs without an auth token.
LOCALSTACK_VERSION="4.14.0"
MOTO_VERSION="5.2.5"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin"

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(minio localstack moto)

log() { printf '[install-s3-servers] %s\n' "$*"; }

python_bin() {
  for p in python3.12 python3.11 python3.13 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      command -v "$p"; return 0
    fi
  done
  return 1
}

install_minio() {
  local stamp="$TOOLS/bin/.minio-version"
  if [ -x "$TOOLS/bin/minio" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then
    log "minio $MINIO_VERSION already installed at $TOOLS/bin/minio"; return 0
  fi
  command -v go >/dev/null 2>&1 || { log "ERROR: go is not installed (need Go >= 1.24)"; return 1; }
  log "building minio $MINIO_VERSION with $(go version) (takes several minutes)"
  GOBIN="$TOOLS/bin" CGO_ENABLED=0 GOFLAGS=-trimpath go install "github.com/minio/minio@$MINIO_VERSION"
  echo "$MINIO_VERSION" > "$stamp"
  log "installed $TOOLS/bin/minio"
}

install_venv_pkg() { # name venv-dir pip-spec import-check
  local name="$1" venv="$2" spec="$3" check="$4"
  local stamp="$venv/.cairn-version"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$spec" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    log "$name ($spec) already installed in $venv"; return 0
  fi
  local py; py="$(python_bin)" || { log "ERROR: need python >= 3.10 with venv"; return 1; }
  log "installing $spec into $venv with $("$py" --version)"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"
  "$venv/bin/python" -c "$check"
  echo "$spec" > "$stamp"
  log "installed $name in $venv"
}

for w in "${want[@]}"; do
  case "$w" in
    minio) install_minio ;;
    localstack) install_venv_pkg localstack "$TOOLS/localstack-venv" "localstack-core[runtime]==$LOCALSTACK_VERSION" 'import localstack.runtime.main' ;;
    moto) install_venv_pkg moto "$TOOLS/moto-venv" "moto[server]==$MOTO_VERSION" 'import moto.server' ;;
    *) log "unknown component: $w"; exit 2 ;;
  esac
done
