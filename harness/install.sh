#!/usr/bin/env bash
# Installs what the reference harnesses need and pre-fetches their Maven artifacts.
# Idempotent and fast when everything is present: apt runs only for missing tools, and the
# Python fetch/build steps skip work when their caches (~/.cache/contextplane or
# $CONTEXTPLANE_CACHE) are complete. A failing step names itself and shows the tail of its
# output.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"

need=()
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || need+=(kcat)
command -v mvn >/dev/null 2>&1 || need+=(maven)
# Kafka 4.x brokers need Java 17+; javac builds the Java client.
command -v javac >/dev/null 2>&1 || [ -x "${JAVA_HOME:-/nonexistent}/bin/javac" ] \
  || need+=(openjdk-17-jdk-headless)
# The PostgreSQL metadata store's tests run a private server (tests/support/postgres.py).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# The web console's browser tests drive Debian's chromium through playwright (never
# `playwright install`: the browser comes from the distribution, not a download).
[ -x /usr/bin/chromium ] || need+=(chromium)
# The dashboard's and the alert rules' PromQL run on a real Prometheus, the rules' unit
# tests on promtool (tests/e2e/test_prometheus_server.py): both in Debian's prometheus.
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)

if [ "${#need[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: ${need[*]} missing and no apt-get to install them with" >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install.sh: installing ${need[*]}" >&2
  log="$(mktemp)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need[@]}"; } \
      >"$log" 2>&1; then
    echo "install.sh: apt-get could not install ${need[*]}:" >&2
    tail -n 15 "$log" | sed 's/^/    /' >&2
    exit 1
  fi
  rm -f "$log"
fi

PY="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

cd "$REPO"
"$PY" -m harness.kafka_reference fetch >/dev/null
"$PY" -m harness.java_client build >/dev/null
"$PY" -m harness.kafka_connect fetch >/dev/null
echo "install.sh: reference harness ready" >&2
