"""What the connection tests observe from outside a broker process: its descriptors and
listen queue, and the round trip of a probe (its memory: `support.proc_status_kib`)."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

from tests.support.rawclient import RawClient

API_VERSIONS = 18


def descriptors(pid: int) -> tuple[int, int]:
    """(open descriptors, of which sockets) of a process."""
    total = sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        total += 1
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return total, sockets


def listen_queue(port: int) -> int:
    """Connections waiting in the kernel's accept queue of the listener on `port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "0A":  # LISTEN
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no listener on port {port}")


def api_versions(client: RawClient, timeout_s: float = 30.0) -> float:
    """Round trip of one ApiVersions request, in seconds."""
    client.sock.settimeout(timeout_s)
    started = time.monotonic()
    response = client.request(
        API_VERSIONS, 3, client_software_name="probe", client_software_version="1"
    )
    assert response.error_code == 0
    return time.monotonic() - started


def frame_header(size: int) -> bytes:
    return struct.pack(">i", size)
