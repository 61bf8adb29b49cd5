"""The services' listening socket: a port in use is an error that names the address (the
executor, context service and registry print it as their one line)."""

from __future__ import annotations

import errno

import pytest

from contextplane.services.bound_socket import bind


def test_a_taken_port_is_named_in_the_error() -> None:
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(OSError) as refused:
            bind("127.0.0.1", port)
        assert refused.value.errno == errno.EADDRINUSE
        assert f"'127.0.0.1:{port}'" in str(refused.value)
        assert refused.value.strerror == "Address already in use"  # the console's warning
    finally:
        taken.close()
