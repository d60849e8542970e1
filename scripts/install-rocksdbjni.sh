#!/usr/bin/env bash
# Installs what the RocksDB 10+ interop tests (test/interop/rocksdb10.test.ts) need: a JDK
# (javac, java) and Maven from Debian when missing, and RocksDB's Java binding
# org.rocksdb:rocksdbjni (classifier linux64, native library inside) from Maven Central into
# Maven's local repository (~/.m2), where the tests look for it. The version is pinned in
# test/interop/rocksdb10/rocksdbjni.version. Idempotent: does nothing when all is there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(tr -d '[:space:]' < "$root/test/interop/rocksdb10/rocksdbjni.version")"
repo="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
jar="$repo/org/rocksdb/rocksdbjni/$version/rocksdbjni-$version-linux64.jar"

if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
  echo "== apt-get install openjdk-17-jdk-headless maven"
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
  else
    sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null \
      || { echo "warning: could not install a JDK and Maven (need root); RocksDB 10 interop tests will skip outside CI" >&2; exit 0; }
  fi
fi

if [ -s "$jar" ]; then
  echo "rocksdbjni $version already in $jar"
  exit 0
fi
echo "== rocksdbjni $version (linux64) from Maven Central"
mvn -q -B -Dmaven.repo.local="$repo" dependency:get -Dartifact="org.rocksdb:rocksdbjni:$version:jar:linux64" -Dtransitive=false
[ -s "$jar" ] || { echo "install-rocksdbjni: $jar missing after mvn dependency:get" >&2; exit 1; }
echo "rocksdbjni $version installed: $jar"
