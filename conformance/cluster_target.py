"""The gate's cluster target (RFC 0004 §8): a client suite against three brokers on one
PostgreSQL and one SeaweedFS bucket, started by `contextplane cluster up`'s supervisor
(cluster/local/) with the suite's settings on every broker. The suite is given broker
1's address and finds the others through Metadata, as any client does; its partitions
and coordinators are spread over the three."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from conformance.suites import SUITES, BrokerSpec, SuiteUnavailable
from contextplane.cluster.local.processes import MissingProgram
from contextplane.cluster.local.supervisor import LocalCluster

BROKERS = 3
# The suites the target runs: the SASL/SSL ones' users would have to go into the
# cluster's PostgreSQL, not a data directory (not built).
CLUSTER_SUITES = [name for name in SUITES if not name.endswith("_sasl")]


@contextlib.contextmanager
def cluster_broker(spec: BrokerSpec, keep: Path) -> Iterator[tuple[str, str]]:
    from conformance.run import implied_kafka_version

    if spec.scram_users or spec.tls_cafile:
        # Users would go into the cluster's PostgreSQL, not a data directory: not built.
        raise SuiteUnavailable("the cluster target runs the PLAINTEXT suites only")
    try:
        cluster = LocalCluster(None, BROKERS, 0, dict(spec.settings))
    except MissingProgram as exc:
        raise SuiteUnavailable(str(exc)) from None
    try:
        cluster.start(threading.Event())
        first = cluster.brokers[0].bootstrap
        yield first, implied_kafka_version(first)
    finally:
        cluster.close(keep_logs=keep)
