#!/usr/bin/env bash
# Installs what the reference harnesses need and pre-fetches their Maven artifacts.
# Idempotent and fast when everything is present: apt runs only for missing tools, and the
# Python fetch/build steps skip work when their caches (~/.cache/contextplane or
# $CONTEXTPLANE_CACHE) are complete.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"

need=()
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || need+=(kcat)
command -v mvn >/dev/null 2>&1 || need+=(maven)
# Kafka 4.x brokers need Java 17+; javac builds the Java client.
command -v javac >/dev/null 2>&1 || [ -x "${JAVA_HOME:-/nonexistent}/bin/javac" ] \
  || need+=(openjdk-17-jdk-headless)

if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PY="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

cd "$REPO"
"$PY" -m harness.kafka_reference fetch >/dev/null
"$PY" -m harness.java_client build >/dev/null
echo "install.sh: reference harness ready" >&2
