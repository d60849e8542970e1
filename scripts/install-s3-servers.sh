#!/usr/bin/env bash
# Installs the S3 servers the integration tests run against, without Docker:
#   - MinIO, built from source with `go install` (the project publishes no module tags: pinned by
#     pseudo-version), into .tools/bin/minio
#   - LocalStack (S3 only), localstack-core from PyPI in the venv .tools/localstack-venv
#   - moto server (a second Python emulator; does not validate checksums), in .tools/moto-venv
#   - SeaweedFS (an on-prem-class store: master, volume, filer and S3 gateway in one `weed server`),
#     built from the Go module proxy's source into .tools/bin/weed
# Idempotent: a component whose pinned version is already installed is left alone.
# Usage: bash scripts/install-s3-servers.sh [minio] [localstack] [moto] [seaweedfs]   (default: all four)
set -euo pipefail

# Pins. MinIO: the last commit of github.com/minio/minio (archived); builds with Go >= 1.24,
# supports CRC32C FULL_OBJECT multipart and If-None-Match.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
# LocalStack: 4.14.x is the last line that runs without an auth token. It needs Python >= 3.12
# (PEP 695 syntax, although its metadata says >= 3.10). Its dependencies are unpinned upstream and
# later releases broke it (cbor2 6 removed cbor2._decoder, pyOpenSSL 26.4 removed
# X509.add_extensions), so every Python package is resolved as of a cutoff date (pip >= 25.1 --uploaded-prior-to).
LOCALSTACK_VERSION="4.14.0"
LOCALSTACK_PYPI_CUTOFF="2026-03-24T00:00:00Z"   # the day after LocalStack's repository was archived
MOTO_VERSION="5.2.5"
# moto silently computes CRC32 where CRC32C is asked for unless the crc32c module is installed.
MOTO_CRC32C_VERSION="2.9.post0"
MOTO_PYPI_CUTOFF="2026-11-20T00:00:00Z"
# SeaweedFS 4.53 (its tags are not semver, so the proxy serves it by pseudo-version). Its go.mod has a
# replace directive, which `go install pkg@version` refuses: the module source is downloaded through
# the proxy and built with `go build` instead. Needs Go >= 1.26.6; takes about 5 minutes on 2 cores.
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin"

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(minio localstack moto seaweedfs)

log() { printf '[install-s3-servers] %s\n' "$*"; }

python_bin() { # minimum minor version, e.g. 12 for 3.12; prints a python that has it and venv
  local min="$1" cands=(python3.13 python3.12 python3)
  # pyenv shims of inactive versions fail to run: look at pyenv's versions directly too.
  local pyroot="${PYENV_ROOT:-$HOME/.pyenv}"
  for v in "$pyroot"/versions/3.13* "$pyroot"/versions/3.12*; do [ -x "$v/bin/python3" ] && cands+=("$v/bin/python3"); done
  for p in "${cands[@]}"; do
    if "$p" -c "import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, $min) else 1)" >/dev/null 2>&1; then
      "$p" -c 'import sys; print(sys.executable)'; return 0
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

install_seaweedfs() {
  local stamp="$TOOLS/bin/.weed-version"
  if [ -x "$TOOLS/bin/weed" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$SEAWEEDFS_VERSION" ]; then
    log "seaweedfs $SEAWEEDFS_VERSION already installed at $TOOLS/bin/weed"; return 0
  fi
  command -v go >/dev/null 2>&1 || { log "ERROR: go is not installed (need Go >= 1.26.6)"; return 1; }
  local src
  src="$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -f "$src/go.mod" ] || { log "ERROR: could not download github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"; return 1; }
  log "building seaweedfs $SEAWEEDFS_VERSION with $(go version) (takes several minutes)"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-trimpath go build -o "$TOOLS/bin/weed.tmp" ./weed)
  mv "$TOOLS/bin/weed.tmp" "$TOOLS/bin/weed"
  echo "$SEAWEEDFS_VERSION" > "$stamp"
  log "installed $TOOLS/bin/weed ($("$TOOLS/bin/weed" version | head -1))"
}

install_venv_pkg() { # name venv-dir pip-spec import-check min-python-minor pypi-cutoff
  local name="$1" venv="$2" spec="$3" check="$4" min="$5" cutoff="$6"
  local -a specs; read -r -a specs <<< "$spec"
  local stamp="$venv/.cairn-version" want="$spec uploaded-prior-to $cutoff"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    log "$name ($spec) already installed in $venv"; return 0
  fi
  local py; py="$(python_bin "$min")" || { log "ERROR: $name needs python >= 3.$min with venv (none found on PATH or in pyenv)"; return 1; }
  log "installing $spec (packages uploaded before $cutoff) into $venv with $("$py" --version)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --uploaded-prior-to "$cutoff" "${specs[@]}"
  "$venv/bin/python" -c "$check"
  echo "$want" > "$stamp"
  log "installed $name in $venv"
}

for w in "${want[@]}"; do
  case "$w" in
    minio) install_minio ;;
    localstack) install_venv_pkg localstack "$TOOLS/localstack-venv" "localstack-core[runtime]==$LOCALSTACK_VERSION" 'import localstack.aws.components, localstack.services.s3.provider' 12 "$LOCALSTACK_PYPI_CUTOFF" ;;
    moto) install_venv_pkg moto "$TOOLS/moto-venv" "moto[server]==$MOTO_VERSION crc32c==$MOTO_CRC32C_VERSION" 'import moto.server, crc32c' 10 "$MOTO_PYPI_CUTOFF" ;;
    seaweedfs) install_seaweedfs ;;
    *) log "unknown component: $w"; exit 2 ;;
  esac
done
