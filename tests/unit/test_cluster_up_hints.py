"""`cluster up`'s failover hint names what a kill keeps in the mode that runs."""

from __future__ import annotations

from contextplane.cli.cluster_up import _failover


def test_the_object_wal_keeps_every_record() -> None:
    assert "every acknowledged record kept" in _failover({"wal.url": "s3://b/wal?x=y"})


def test_a_local_wal_keeps_unuploaded_partitions_offline() -> None:
    hint = _failover({"wal.url": ""})
    assert "every acknowledged record kept" not in hint
    assert "stay offline until it is back" in hint
