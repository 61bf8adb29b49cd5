"""The topics a service keeps its state in, created at its start when missing (the
context service's changelog, the executor's ledger and request topics), as a Kafka client
of any cluster. Only the missing ones are asked for: a refused creation (the topic
exists) is an audited failure on the cluster, at every restart."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


def ensure_topics(
    admin: AdminClient,
    wanted: list[NewTopic],
    bootstrap: str,
    timeout_s: float,
    error: type[Exception],
) -> None:
    """Create those of `wanted` the cluster lacks; `error(message)` when it cannot."""
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise error(f"listing the topics of {bootstrap}: {exc.args[0].str()}") from None
    missing = [t for t in wanted if t.topic not in existing]
    if not missing:
        return
    futures = admin.create_topics(missing, request_timeout=timeout_s)
    for topic, future in futures.items():
        try:
            future.result(timeout_s)
            log.info("created topic %s", topic)
        except TimeoutError:
            raise error(
                f"creating {topic} on {bootstrap} got no answer within {timeout_s:g} s"
                " (is the Kafka cluster reachable?)"
            ) from None
        except KafkaException as exc:  # created meanwhile by another instance: fine
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise error(f"creating {topic}: {exc.args[0].str()}") from None
