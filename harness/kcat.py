"""Run kcat (Debian package) against a newer librdkafka than the one Debian links.

Debian 12's kcat links librdkafka 2.0.2, which misparses non-empty tagged fields. The
confluent-kafka wheel in the venv bundles a current librdkafka (auditwheel renames it to
``confluent_kafka.libs/librdkafka-<hash>.so.1``, statically linked apart from libc). We
expose it under its real soname ``librdkafka.so.1`` in a cache dir and put that dir on
LD_LIBRARY_PATH; kcat's symbols are unversioned, so the newer library binds cleanly.

    from harness.kcat import kcat_command
    subprocess.run([*kcat_command(), "-L", "-b", "127.0.0.1:9092"], check=True)

Set CONTEXTPLANE_KCAT_PLAIN=1 to use Debian's own librdkafka instead.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness._maven import cache_root

REPO = Path(__file__).resolve().parent.parent


def kcat_binary() -> str:
    found = shutil.which("kcat") or shutil.which("kafkacat")
    if not found:
        raise RuntimeError("kcat not found: run harness/install.sh (apt-get install kcat)")
    return found


def bundled_librdkafka() -> Path | None:
    """librdkafka shipped inside the confluent-kafka wheel, if installed."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("confluent_kafka")
    if spec and spec.origin:
        candidates.append(Path(spec.origin).resolve().parent.parent / "confluent_kafka.libs")
    # Fallback when the harness runs under an interpreter without confluent-kafka.
    candidates.extend(REPO.glob(".venv/lib/python3*/site-packages/confluent_kafka.libs"))
    for libs in candidates:
        found = sorted(libs.glob("librdkafka*.so.1"))
        if found:
            return found[0]
    return None


def _soname_dir(lib: Path) -> Path:
    """A cache dir holding `librdkafka.so.1` -> lib (the soname kcat asks the loader for)."""
    tag = hashlib.sha256(str(lib).encode()).hexdigest()[:12]
    d = cache_root() / "kcat-librdkafka" / tag
    d.mkdir(parents=True, exist_ok=True)
    link = d / "librdkafka.so.1"
    if not (link.is_symlink() and os.readlink(link) == str(lib)):
        tmp = d / f".librdkafka.so.1.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(lib)
        tmp.replace(link)  # atomic, safe under parallel workers
    return d


def librdkafka_version(argv_prefix: list[str]) -> str | None:
    """The librdkafka version that kcat reports when run with `argv_prefix`."""
    try:
        out = subprocess.run(
            [*argv_prefix, "-V"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"librdkafka (\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


def kcat_command() -> list[str]:
    """argv prefix that runs kcat, with the wheel's newer librdkafka when it loads correctly.

    Falls back to plain kcat (Debian's librdkafka) if the bundled library is missing or kcat
    does not start with it. Set CONTEXTPLANE_KCAT_PLAIN=1 to force plain kcat.
    """
    return list(_kcat_command(bool(os.environ.get("CONTEXTPLANE_KCAT_PLAIN"))))


@functools.lru_cache(maxsize=2)
def _kcat_command(plain_only: bool) -> tuple[str, ...]:
    kcat = kcat_binary()
    if plain_only:
        return (kcat,)
    lib = bundled_librdkafka()
    if lib is None:
        return (kcat,)
    ld_path = str(_soname_dir(lib))
    if os.environ.get("LD_LIBRARY_PATH"):
        ld_path += os.pathsep + os.environ["LD_LIBRARY_PATH"]
    cmd = ["env", f"LD_LIBRARY_PATH={ld_path}", kcat]
    plain = librdkafka_version([kcat])
    newer = librdkafka_version(cmd)
    # Only use it if kcat really picked up a different (the bundled) library.
    if newer and newer != plain:
        return tuple(cmd)
    return (kcat,)


def main() -> int:
    cmd = kcat_command()
    print(" ".join(cmd), file=sys.stderr)
    print(f"librdkafka {librdkafka_version(cmd)}", file=sys.stderr)
    return subprocess.run([*cmd, *sys.argv[1:]], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
