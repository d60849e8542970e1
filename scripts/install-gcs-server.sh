#!/usr/bin/env bash
# Installs fake-gcs-server (the GCS emulator the test suite runs against) into .tools/bin/.
# Idempotent: does nothing when the pinned version is already there. Needs Go >= 1.25 and the
# Go module proxy; no Docker. Used by CI on a fresh machine and by developers.
#
# Pinned version: >= v1.55.0 is required, because older ones do not validate a declared
# crc32c/md5 on upload (cairn's checksum protocol depends on the server rejecting a mismatch).
set -euo pipefail

FAKE_GCS_VERSION="${FAKE_GCS_VERSION:-v1.56.1}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="$root/.tools/bin"
bin="$bindir/fake-gcs-server"
stamp="$bindir/.fake-gcs-server.version"

if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$FAKE_GCS_VERSION" ]]; then
  echo "fake-gcs-server $FAKE_GCS_VERSION already installed in $bindir"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-gcs-server: 'go' not found on PATH (Go >= 1.25 needed)" >&2
  exit 1
fi

mkdir -p "$bindir"
echo "installing fake-gcs-server $FAKE_GCS_VERSION into $bindir (go build, takes a few minutes)"
# GOTOOLCHAIN=auto lets the go command fetch a newer toolchain from the module proxy if the
# module's go.mod ever asks for one newer than the installed Go.
GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS="${GOFLAGS:-} -buildvcs=false" GOBIN="$bindir" \
  go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION"
echo "$FAKE_GCS_VERSION" > "$stamp"
"$bin" -help >/dev/null 2>&1 || true
echo "fake-gcs-server $FAKE_GCS_VERSION installed: $bin"
