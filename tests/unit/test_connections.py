"""Connection quotas and the request memory budget (pure bookkeeping)."""

from __future__ import annotations

import pytest

from contextplane.broker.connections import ConnectionQuotas, RequestMemory, address_key


def test_per_ip_limit_with_overrides_and_release() -> None:
    quotas = ConnectionQuotas(10, 2, {"127.0.0.2": 3})
    assert quotas.admit("127.0.0.1") and quotas.admit("127.0.0.1")
    assert not quotas.admit("127.0.0.1")  # refused, and not counted
    assert quotas.count("127.0.0.1") == 2 and quotas.total == 2
    assert all(quotas.admit("127.0.0.2") for _ in range(3))
    assert not quotas.admit("127.0.0.2")
    quotas.release("127.0.0.1")
    assert quotas.admit("127.0.0.1")
    assert quotas.total == 5


def test_override_host_names_are_resolved() -> None:
    # As Kafka's InetAddress.getByName: the limit applies to the name's addresses.
    quotas = ConnectionQuotas(10, 5, {"localhost": 1})
    assert quotas.limit_for("127.0.0.1") == 1
    assert quotas.limit_for("127.0.0.2") == 5


def test_broker_wide_slots() -> None:
    quotas = ConnectionQuotas(2, 100, {})
    quotas.admit("10.0.0.1")
    assert quotas.slot_available()
    quotas.admit("10.0.0.2")
    assert not quotas.slot_available()
    quotas.release("10.0.0.1")
    assert quotas.slot_available()
    with pytest.raises(ValueError):
        quotas.release("10.0.0.1")


def test_ipv4_mapped_peers_count_as_ipv4() -> None:
    assert address_key("::ffff:127.0.0.1") == "127.0.0.1"
    quotas = ConnectionQuotas(10, 1, {})
    assert quotas.admit("127.0.0.1")
    assert not quotas.admit("::ffff:127.0.0.1")


def test_memory_admits_while_any_budget_is_left_then_queues_in_order() -> None:
    memory = RequestMemory(100)
    assert memory.reserve(60)
    assert memory.reserve(60)  # non-strict: one frame may pass the bound
    assert not memory.reserve(1)
    granted: list[str] = []
    memory.wait(50, lambda: granted.append("first"))
    second = memory.wait(10, lambda: granted.append("second"))
    memory.wait(10, lambda: granted.append("third"))
    memory.cancel(second)
    assert not memory.reserve(1), "a newcomer does not overtake the waiting frames"
    assert memory.reserve(1, force=True)  # a connection's free allowance
    memory.release(60)  # 61 used: the first waiter is admitted, and that spends the rest
    assert granted == ["first"] and memory.used == 111
    memory.release(1)
    assert granted == ["first"]
    memory.release(60)  # the cancelled waiter is skipped
    assert granted == ["first", "third"]
    assert memory.used == 60


def test_unbounded_memory() -> None:
    memory = RequestMemory(-1)
    assert memory.reserve(10**12)
    assert memory.available()
