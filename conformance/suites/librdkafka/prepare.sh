#!/usr/bin/env bash
# Fetch librdkafka's source package from Debian (apt-get source; adds a deb-src entry if
# none is configured) and build the library and its test runner, into the cache dir.
# Idempotent: a finished build is reused. Prints the source directory on its last line.
set -euo pipefail
CACHE=${CONTEXTPLANE_CACHE:-$HOME/.cache/contextplane}
ROOT="$CACHE/librdkafka-src"
mkdir -p "$ROOT"
src=$(find "$ROOT" -mindepth 1 -maxdepth 1 -type d -name 'librdkafka-*' | sort | tail -n1)
if [ -n "$src" ] && [ -x "$src/tests/test-runner" ] && [ -f "$src/.contextplane-built" ]; then
    echo "$src"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The same archive as the binary packages, source side (Debian's deb822 format).
    base=/etc/apt/sources.list.d/debian.sources
    if [ -f "$base" ]; then
        sed -e 's/^Types: deb$/Types: deb-src/' "$base" \
            | $SUDO tee /etc/apt/sources.list.d/contextplane-deb-src.sources >/dev/null
    else
        grep -E '^deb ' /etc/apt/sources.list | sed -e 's/^deb /deb-src /' \
            | $SUDO tee /etc/apt/sources.list.d/contextplane-deb-src.list >/dev/null
    fi
    $SUDO apt-get update -qq
fi
need=""
for pkg in dpkg-dev build-essential python3 zlib1g-dev libzstd-dev liblz4-dev libssl-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    $SUDO apt-get install -y -qq $need >/dev/null
fi
if [ -z "$src" ]; then
    # A stale package list may name a version the archive no longer has: update once.
    (cd "$ROOT" && apt-get source librdkafka >"$ROOT/apt-source.log" 2>&1) || {
        $SUDO apt-get update -qq
        (cd "$ROOT" && apt-get source librdkafka >"$ROOT/apt-source.log" 2>&1)
    }
    src=$(find "$ROOT" -mindepth 1 -maxdepth 1 -type d -name 'librdkafka-*' | sort | tail -n1)
fi
if [ -z "$src" ]; then
    echo "apt-get source librdkafka unpacked nothing; see $ROOT/apt-source.log" >&2
    exit 1
fi
cd "$src"
if [ ! -f Makefile.config ]; then
    ./configure --no-download >"$ROOT/configure.log" 2>&1
fi
make -j"$(nproc)" libs >"$ROOT/make-libs.log" 2>&1
make -C tests -j"$(nproc)" build >"$ROOT/make-tests.log" 2>&1
touch .contextplane-built
echo "$src"
