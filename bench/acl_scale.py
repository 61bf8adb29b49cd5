"""What a large ACL set costs a request, and what a large ACL request costs the others.

    .venv/bin/python -m bench.acl_scale [--acls 100000] [--rounds 5]

One broker process (StandardAuthorizer; a PLAINTEXT listener whose User:ANONYMOUS is a
super user, and a SASL_PLAINTEXT listener with PLAIN for alice, who may DESCRIBE topic
`pub`). `--acls` LITERAL ACLs on `pub` for other principals are created (10,000 per
CreateAcls, Kafka's bound), then, timed `--rounds` times each, as alice:

    metadata_ops_ms      Metadata v12 for `pub` with topic and cluster authorized
                         operations (a bit set of eight topic operations), an ACL
                         created before each round so the decision cache is empty
    init_producer_id_ms  InitProducerId of an idempotent producer (refused: alice has no
                         WRITE; Kafka's authorizeByResourceType over TOPIC)

Then all ACLs are removed (10,000 per DeleteAcls), 2,000 ACLs created, and one DeleteAcls
with 100 identical match-all filters sent while a probe (ApiVersions every 20 ms on its
own connection) measures the longest it waited:

    delete_dup_filters_s     that DeleteAcls, answered with 100 x 2,000 bindings
    probe_worst_ms           the probe's longest wait meanwhile

One JSON line of medians (and maxima) at the end. Run it on the code before and after a
change in the same session to compare: the figures are wall-clock and move with load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from conformance import wire
from conformance.wire import Acl, acl_filter, create_acls, delete_acls
from tests.support.broker import BrokerProcess, free_port
from tests.support.rawclient import RawClient
from tests.support.sasl_login import login

TOPIC, LITERAL, WRITE, DESCRIBE, ALLOW = 2, 3, 4, 8, 3


def _timed(call: object, rounds: int, prepare: object = None) -> list[float]:
    out = []
    for n in range(rounds):
        if prepare is not None:
            prepare(n)  # type: ignore[operator]
        started = time.monotonic()
        call()  # type: ignore[operator]
        out.append((time.monotonic() - started) * 1000)
    return out


def _add_others(admin: RawClient, count: int) -> None:
    for start in range(0, count, 10_000):
        acls = [
            Acl(TOPIC, "pub", LITERAL, f"User:u{i}", _host(start), WRITE, ALLOW)
            for i in range(start, min(count, start + 10_000))
        ]
        codes = {r.error_code for r in create_acls(admin, acls).results}
        assert codes == {0}, codes


def _host(start: int) -> str:
    """Each CreateAcls' block of 10,000 has a host of its own, so that one filter removes
    it (within Kafka's bound) at a cost that does not depend on the code measured."""
    return f"10.0.{start // 10_000}.1"


def _remove_all(admin: RawClient, count: int) -> None:
    for start in range(0, count, 10_000):
        delete_acls(admin, [acl_filter(host=_host(start))])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--acls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    plain, sasl = free_port(), free_port()
    settings = {
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            'user_alice="alice-secret";'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
        "connection.failed.authentication.delay.ms": "0",
    }
    with tempfile.TemporaryDirectory(prefix="acl-scale-") as tmp:
        broker = BrokerProcess(Path(tmp) / "data", port=plain, settings=settings).start(60)
        try:
            admin = RawClient(broker.bootstrap, "admin")
            admin.sock.settimeout(300)
            wire.create_topic(admin, "pub", 1)
            wire.wait_for_topic(admin, "pub", 1)
            create_acls(admin, [Acl(TOPIC, "pub", LITERAL, "User:alice", "*", DESCRIBE, ALLOW)])
            _add_others(admin, args.acls)
            alice = login(RawClient(f"127.0.0.1:{sasl}", "alice"), "PLAIN", "alice", "alice-secret")
            alice.sock.settimeout(300)

            def metadata() -> None:
                alice.request(
                    3,
                    12,
                    topics=[{"name": "pub", "topic_id": uuid.UUID(int=0)}],
                    allow_auto_topic_creation=False,
                    include_cluster_authorized_operations=True,
                    include_topic_authorized_operations=True,
                )

            def change_acls(n: int) -> None:
                # Any ACL change empties the decision cache: each round decides afresh.
                create_acls(admin, [Acl(TOPIC, f"other-{n}", LITERAL, "User:x", "*", WRITE, ALLOW)])

            metadata_ms = _timed(metadata, args.rounds, change_acls)
            init_ms = _timed(lambda: wire.init_producer_id(alice), args.rounds)
            _remove_all(admin, args.acls)
            _add_others(admin, 2_000)
            worst = [0.0]
            stop = threading.Event()

            def probe() -> None:
                client = RawClient(broker.bootstrap, "probe")
                client.sock.settimeout(300)
                while not stop.is_set():
                    started = time.monotonic()
                    wire.api_versions(client)
                    worst[0] = max(worst[0], time.monotonic() - started)
                    stop.wait(0.02)

            thread = threading.Thread(target=probe, daemon=True)
            thread.start()
            started = time.monotonic()
            response = delete_acls(admin, [acl_filter()] * 100)
            delete_s = time.monotonic() - started
            stop.set()
            thread.join(300)
            bindings = sum(len(r.matching_acls) for r in response.filter_results)
        finally:
            broker.stop(60)
    print(
        json.dumps(
            {
                "acls": args.acls,
                "metadata_ops_ms": round(statistics.median(metadata_ms), 1),
                "metadata_ops_max_ms": round(max(metadata_ms), 1),
                "init_producer_id_ms": round(statistics.median(init_ms), 1),
                "init_producer_id_max_ms": round(max(init_ms), 1),
                "delete_dup_filters_s": round(delete_s, 2),
                "delete_dup_filters_bindings": bindings,
                "probe_worst_ms": round(worst[0] * 1000, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
