#!/usr/bin/env bash
# Fetch librdkafka's source package from Debian (apt-get source; adds a deb-src entry if
# none is configured) and build the library and its test runner, into the cache dir.
# Idempotent: a finished build is reused. Prints the source directory on its last line.
# With LIBRDKAFKA_RELEASE and LIBRDKAFKA_VERSION (e.g. sid, 2.14.2-1) it fetches that
# version from that Debian release instead, through an apt configuration of its own in the
# cache (the system's sources stay as they are), into librdkafka-<release>-src.
# Every step logs to a file in the cache; a failing step prints one line naming it and the
# tail of its log on stderr, and exits 1.
set -euo pipefail
CACHE=${CONTEXTPLANE_CACHE:-$HOME/.cache/contextplane}
RELEASE=${LIBRDKAFKA_RELEASE:-}
VERSION=${LIBRDKAFKA_VERSION:-}
ROOT="$CACHE/librdkafka${RELEASE:+-$RELEASE}-src"
mkdir -p "$ROOT"

# The unpacked source is a directory *inside* ROOT (never ROOT itself, whose name also
# starts with librdkafka-).
source_dir() {
    find "$ROOT" -mindepth 1 -maxdepth 1 -type d -name 'librdkafka-*' | sort | tail -n1
}

# step NAME LOG COMMAND...: run COMMAND with its output in LOG; on failure say which step.
step() {
    local name=$1 log=$2
    shift 2
    if ! "$@" >"$log" 2>&1; then
        {
            echo "librdkafka: $name failed (full log: $log):"
            tail -n 15 "$log" | sed 's/^/    /'
        } >&2
        exit 1
    fi
}

src=$(source_dir)
if [ -n "$src" ] && [ -x "$src/tests/test-runner" ] && [ -f "$src/.contextplane-built" ]; then
    echo "$src"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
for tool in apt-get dpkg; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "librdkafka: $tool not found: the suite is built from Debian's source package" >&2
        exit 1
    }
done
if [ -n "$RELEASE" ]; then
    # Another release's source index, in the cache: apt-get source with these options only.
    APT="$ROOT/apt"
    mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial"
    # The archive the system's own packages come from (its first Debian URI).
    archive=$(grep -hsoE '^URIs: *[^ ]+' /etc/apt/sources.list.d/debian.sources | head -n1 \
        | sed 's/^URIs: *//')
    if [ -z "$archive" ]; then
        archive=$(grep -hsE '^deb ' /etc/apt/sources.list | sed -E 's/^deb +(\[[^]]*\] +)?//' \
            | awk '{print $1}' | head -n1)
    fi
    [ -n "$archive" ] || { echo "librdkafka: no Debian archive in the apt sources" >&2; exit 1; }
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "$archive $RELEASE main" >"$APT/sources.list"
    APT_OPTS=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache")
elif ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The same archive as the binary packages, source side (Debian's deb822 format).
    base=/etc/apt/sources.list.d/debian.sources
    if [ -f "$base" ]; then
        sed -e 's/^Types: deb$/Types: deb-src/' "$base" \
            | $SUDO tee /etc/apt/sources.list.d/contextplane-deb-src.sources >/dev/null
    else
        grep -E '^deb ' /etc/apt/sources.list | sed -e 's/^deb /deb-src /' \
            | $SUDO tee /etc/apt/sources.list.d/contextplane-deb-src.list >/dev/null
    fi
    step "apt-get update (after adding a deb-src entry)" "$ROOT/apt-update.log" \
        $SUDO apt-get update
fi
need=""
for pkg in dpkg-dev build-essential python3 zlib1g-dev libzstd-dev liblz4-dev libssl-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    step "apt-get install of the build dependencies ($need )" "$ROOT/apt-install.log" \
        env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y $need
fi
if [ -z "$src" ] && [ -n "$RELEASE" ]; then
    step "apt-get update ($RELEASE sources)" "$ROOT/apt-update.log" apt-get "${APT_OPTS[@]}" update
    step "apt-get source librdkafka=$VERSION ($RELEASE)" "$ROOT/apt-source.log" \
        bash -c 'cd "$1" && shift && apt-get "$@" source --download-only "librdkafka=$0"' \
        "$VERSION" "$ROOT" "${APT_OPTS[@]}"
    # Upstream's tree: Debian's patches build against the system's nanopb and cJSON, which
    # the upstream build does not need (it has its own copies).
    step "dpkg-source -x --skip-patches" "$ROOT/dpkg-source.log" \
        bash -c 'cd "$1" && dpkg-source -x --skip-patches librdkafka_"$0".dsc' "$VERSION" "$ROOT"
    src=$(source_dir)
fi
if [ -z "$src" ]; then
    # A stale package list may name a version the archive no longer has: update once.
    if ! (cd "$ROOT" && apt-get source librdkafka) >"$ROOT/apt-source.log" 2>&1; then
        step "apt-get update (before retrying apt-get source)" "$ROOT/apt-update.log" \
            $SUDO apt-get update
        step "apt-get source librdkafka" "$ROOT/apt-source.log" \
            bash -c 'cd "$1" && apt-get source librdkafka' _ "$ROOT"
    fi
    src=$(source_dir)
fi
if [ -z "$src" ]; then
    echo "librdkafka: apt-get source librdkafka unpacked nothing (log: $ROOT/apt-source.log)" >&2
    exit 1
fi
cd "$src"
if [ ! -f Makefile.config ]; then
    step "./configure" "$ROOT/configure.log" ./configure --no-download
fi
step "make libs" "$ROOT/make-libs.log" make -j"$(nproc)" libs
step "make -C tests build" "$ROOT/make-tests.log" make -C tests -j"$(nproc)" build
touch .contextplane-built
echo "$src"
