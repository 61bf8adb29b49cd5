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


def test_memory_is_counted_as_read_and_waiters_are_woken_in_order() -> None:
    memory = RequestMemory(100)
    memory.take(60)
    memory.take(60)  # read past the budget: counted, no room left
    assert memory.room == -20
    granted: list[str] = []
    memory.wait("a", False, lambda: granted.append("a"))
    second = memory.wait("b", False, lambda: granted.append("b"))
    memory.wait("c", False, lambda: granted.append("c"))
    memory.cancel(second)
    assert memory.waiting == 2 and not granted
    memory.release(30)  # room again: the first waiter is woken
    assert granted == ["a"] and memory.waiting == 1
    memory.release(1)
    assert granted == ["a", "c"], "the cancelled waiter is skipped"
    assert memory.waiting == 0 and memory.used == 89


def test_frames_half_read_when_the_budget_runs_out_never_wait_on_each_other() -> None:
    """Two 60-byte frames against a 100-byte budget: one finishes on the overdraft, then
    the other (not both at once past the bound)."""
    memory = RequestMemory(100)
    memory.take(50)
    memory.take(50)
    granted: list[str] = []
    memory.wait("a", True, lambda: granted.append("a"))
    assert granted == ["a"] and memory.overdraft == "a"
    memory.wait("b", True, lambda: granted.append("b"))
    assert granted == ["a"], "one overdraft at a time"
    memory.take(10)  # a's frame arrives whole
    memory.end_overdraft("b")  # not the holder: nothing changes
    assert memory.overdraft == "a"
    memory.release(60)  # a's frame handled
    memory.end_overdraft("a")
    assert granted == ["a", "b"] and memory.overdraft is None  # room: b reads normally


def test_unbounded_memory() -> None:
    memory = RequestMemory(-1)
    memory.take(10**12)
    assert memory.room > 0


def test_request_memory_is_held_to_the_memory_budgets_request_share() -> None:
    from contextplane.storage.memory import MemoryBudget

    budget = MemoryBudget(total_bytes=400, log_cache_cap_bytes=400)
    assert RequestMemory(1000, budget).budget == 100  # a quarter of the budget
    assert RequestMemory(-1, budget).budget == 100  # queued.max.request.bytes=-1 too
    assert RequestMemory(60, budget).budget == 60  # a smaller setting stays
    assert RequestMemory(1000).budget == 1000  # without a budget: the setting alone


def test_request_bytes_are_counted_in_the_budget_and_shrink_the_log_cache() -> None:
    from contextplane.storage.memory import MemoryBudget

    budget = MemoryBudget(total_bytes=400, log_cache_cap_bytes=400)
    budget.log_cache_bytes = 350
    shrinks: list[int] = []
    budget.on_shrink = lambda: shrinks.append(budget.log_cache_limit)
    memory = RequestMemory(1000, budget)
    memory.take(80)
    assert budget.request_bytes == 80 and budget.used_bytes == 430
    assert shrinks == [320], "the log cache is asked to give the requests room"
    assert budget.produce_pinned_bytes == 0, "queued requests never refuse produce"
    memory.take(30)  # past the share: counted all the same (the bytes are in memory)
    assert memory.room == -10 and budget.request_bytes == 110
    memory.release(110)
    assert budget.request_bytes == 0 and memory.used == 0
