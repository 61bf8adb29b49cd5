"""What every command that is a Kafka client of a running cluster shares (`audit reads`,
`registry`, `topic`, `group`, `produce`, `consume`): `--bootstrap-server` and
`--command-config` as Kafka's tools take them, Kafka client properties mapped to
librdkafka's names, librdkafka's own log lines kept off the output, and one clear line
when the cluster cannot be reached or refuses the login.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contextplane.cli.output import fail
from contextplane.client_properties import ClientPropertyError, librdkafka_config
from contextplane.clock import SystemClock
from contextplane.properties_file import parse_properties, read_properties_text

# A broker that answers at all answers Metadata within this; past it the tool says why
# it could not connect rather than wait for the whole --timeout.
CONNECT_TIMEOUT_S = 10.0
# How long an admin request (create, describe, list offsets, ...) may take to answer.
ADMIN_TIMEOUT_S = 30.0
# A topic just created may not be in the answering broker's metadata yet (Kafka creates it
# asynchronously: librdkafka waits topic.metadata.propagation.max.ms, Kafka's producer
# max.block.ms, before calling it absent); one said unknown is asked for again this long.
PROPAGATION_WAIT_S = 2.0
PROPAGATION_POLL_S = 0.1
NEEDS_SECURITY = (
    "the listener likely needs security settings: give --command-config with its "
    "security.protocol (and SASL or TLS properties)"
)

# librdkafka's own log lines (`%3|...|FAIL|...`) would follow the output on stderr: they
# go to this logger at debug level instead (shown with logging configured to DEBUG).
_librdkafka_log = logging.getLogger("contextplane.cli.librdkafka")


class ConfigError(ValueError):
    """A command-line value or client property this tool cannot use (exit status 2)."""


class BrokerUnreachable(Exception):
    """No answer from the cluster, or it refused the login (the message says which)."""


class CommandError(Exception):
    """What went wrong, in one line (exit status 1): the resource and Kafka's error."""


class LibrdkafkaLog:
    """confluent-kafka's `logger`: every librdkafka line, whatever its level, at debug;
    the disconnections are kept to explain a failed connection."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def log(self, level: int, message: str, *args: object) -> None:
        _librdkafka_log.debug(message, *args)
        text = message % args if args else message
        if "Disconnected" in text and len(self.failures) < 100:
            self.failures.append(text)


def client_config(properties: dict[str, str]) -> dict[str, str]:
    """librdkafka settings for Kafka client security properties (PEM files only: the
    Java key stores are not readable by librdkafka)."""
    try:
        return librdkafka_config(properties)
    except ClientPropertyError as exc:
        raise ConfigError(str(exc)) from None


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-server", required=True, help="host:port of a broker of the cluster"
    )
    parser.add_argument(
        "--command-config", type=Path, help="client security properties (Kafka's names)"
    )


def config_from_arguments(args: argparse.Namespace) -> dict[str, str]:
    """librdkafka settings from `--bootstrap-server` and `--command-config` (ConfigError
    or OSError when the file cannot be used)."""
    try:
        text = read_properties_text(args.command_config) if args.command_config else ""
    except OSError as exc:
        raise ConfigError(f"--command-config: {exc}") from None
    return client_config(parse_properties(text)) | {"bootstrap.servers": args.bootstrap_server}


class Connection:
    """A client's callbacks (`error_cb`, `logger`) and what they saw, to say why the
    cluster did not answer: no listener, a refused login, or TLS expected."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.log = LibrdkafkaLog()
        self.refused: list[Any] = []
        self.transport: list[Any] = []
        # Every bootstrap server refused the connection (none is listening), at least once.
        self.all_down = False

    def client_config(self) -> dict[str, Any]:
        return self.config | {"error_cb": self._on_error, "logger": self.log}

    def _on_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        # librdkafka retries a failed login until the timeout and then reports only a
        # transport failure: keep the authentication error to name it instead.
        if error.code() == KafkaError._AUTHENTICATION:
            self.refused.append(error)
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_down = True
        elif error.code() == KafkaError._TRANSPORT and len(self.transport) < 100:
            self.transport.append(error)

    def metadata(self, client: Any, timeout_s: float, topic: str | None = None) -> Any:
        """The cluster's metadata (of `topic` only, if given) through `client` (a Consumer,
        Producer or AdminClient made with `client_config()`); BrokerUnreachable with the
        reason when there is no answer within min(timeout_s, CONNECT_TIMEOUT_S)."""
        from confluent_kafka import KafkaException

        clock = SystemClock()
        waited_s = min(timeout_s, CONNECT_TIMEOUT_S)
        deadline_ms = clock.monotonic_ms() + waited_s * 1000
        while True:
            try:
                return client.list_topics(topic, timeout=1.0)
            except KafkaException:
                client.poll(0)  # serves error_cb
                if self.refused:
                    raise BrokerUnreachable(
                        f"authentication failed: {self.refused[0].str()}"
                    ) from None
                unsecured = self._unsecured_to_secured()
                if unsecured is not None:
                    raise BrokerUnreachable(unsecured) from None
                if self._all_refused() or clock.monotonic_ms() >= deadline_ms:
                    raise BrokerUnreachable(self._no_connection(waited_s)) from None

    def topic(self, client: Any, timeout_s: float, name: str) -> Any:
        """`name`'s metadata (confluent-kafka's TopicMetadata); CommandError naming
        Kafka's error where the cluster has no such topic, after PROPAGATION_WAIT_S."""
        from confluent_kafka import KafkaError

        clock = SystemClock()
        deadline_ms = clock.monotonic_ms() + PROPAGATION_WAIT_S * 1000
        while True:
            topic = self.metadata(client, timeout_s, name).topics.get(name)
            unknown = topic is not None and topic.error is not None
            if not unknown or topic.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                break
            if clock.monotonic_ms() >= deadline_ms:
                break
            time.sleep(PROPAGATION_POLL_S)
        if topic is None or topic.error is not None:
            error = kafka_error_text(topic.error) if topic is not None else "absent"
            raise CommandError(f"topic {name!r}: {error}")
        return topic

    def _all_refused(self) -> bool:
        """Nothing listens at any bootstrap address: waiting longer would not help a
        command run by hand (a cluster still starting is retried by the caller)."""
        return (
            self.all_down
            and bool(self.transport)
            and all("Connection refused" in error.str() for error in self.transport)
        )

    def _plaintext(self) -> bool:
        return str(self.config.get("security.protocol", "PLAINTEXT")).upper() == "PLAINTEXT"

    def _unsecured_to_secured(self) -> str | None:
        """The message for a plaintext client whose connection the broker closed during
        the first request, ApiVersions (what a TLS listener does with plaintext Kafka)."""
        if not self._plaintext():
            return None
        for text in self.log.failures:
            # librdkafka: "Disconnected: connection closed by peer: ... in state
            # APIVERSION_QUERY", or "... might be caused by incorrect security.protocol ..."
            if "APIVERSION_QUERY" in text or "security.protocol" in text:
                return (
                    f"{self.config['bootstrap.servers']} closed the connection during the "
                    f"handshake: {NEEDS_SECURITY}"
                )
        return None

    def _no_connection(self, waited_s: float) -> str:
        servers = self.config["bootstrap.servers"]
        if self._all_refused():
            return f"cannot connect to {servers}: connection refused (is a broker running there?)"
        seen = f": {self.transport[0].str()}" if self.transport else ""
        refused = any("Connection refused" in error.str() for error in self.transport)
        # A listener expecting TLS or SASL closes a plaintext client's connection; one
        # that stayed open without an answer is a slow or stalled cluster instead.
        if refused or not self._plaintext():
            hint = ""
        elif self.log.failures:
            hint = f"; {NEEDS_SECURITY}"
        else:
            hint = "; the connection stayed open without an answer (a slow or stalled broker?)"
        return f"no answer from {servers} within {waited_s:.0f} s{seen}{hint}"


def kafka_error_text(error: Any) -> str:
    """A KafkaError as `NAME (description)`, Kafka's error name first, as scripts grep it."""
    return f"{error.name()} ({error.str()})"


def exception_text(exc: BaseException) -> str:
    """A failed admin future's exception: the KafkaError it carries, else its text."""
    from confluent_kafka import KafkaError

    if exc.args and isinstance(exc.args[0], KafkaError):
        return kafka_error_text(exc.args[0])
    return str(exc) or type(exc).__name__


def connect_admin(args: argparse.Namespace) -> tuple[Any, Any]:
    """An AdminClient of the cluster `args` names and the cluster's metadata (asked first:
    an unreachable cluster is named before any request waits for its whole timeout)."""
    from confluent_kafka.admin import AdminClient

    connection = Connection(config_from_arguments(args))
    admin = AdminClient(connection.client_config())
    return admin, connection.metadata(admin, ADMIN_TIMEOUT_S)


def answer(future: Any, what: str) -> Any:
    """The result of an admin request's future; CommandError naming `what` and Kafka's
    error if it failed or did not answer within ADMIN_TIMEOUT_S."""
    from confluent_kafka import KafkaException

    try:
        return future.result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        raise CommandError(f"{what}: {exception_text(exc)}") from None
    except concurrent.futures.TimeoutError:
        raise CommandError(f"{what}: no answer within {ADMIN_TIMEOUT_S:.0f} s") from None


def run_command(command: str, body: Callable[[], int]) -> int:
    """`body`'s exit status; a failure as one line on stderr: 2 for an argument or a
    client property that cannot be used, 1 for everything the cluster said or did not."""
    from confluent_kafka import KafkaException

    try:
        return body()
    except ConfigError as exc:
        fail(command, str(exc))
        return 2
    except (BrokerUnreachable, CommandError) as exc:
        return fail(command, str(exc))
    except KafkaException as exc:
        return fail(command, exception_text(exc))
    except KeyboardInterrupt:  # Ctrl-C: the shell's status for SIGINT, no traceback
        return 130


def security_config(command_config: Path | None) -> dict[str, str]:
    """librdkafka's security settings from a `--command-config` file (Kafka's names),
    or none; OSError for an unreadable file, ConfigError for a property it cannot map."""
    properties = parse_properties(read_properties_text(command_config)) if command_config else {}
    return client_config(properties)


def leaderless(topic: Any, partitions: list[int], brokers: dict[int, Any] | None = None) -> str:
    """Of `partitions` (of a topic's metadata), those nothing can be read from or written
    to now, as text: without a leader ("partitions 1, 2 without a leader (offline)"), and,
    given the metadata's `brokers`, led by a broker that takes no TCP connection (killed
    or stopped while its lease lasts: Metadata still names it); "" when none."""
    from contextplane.cli.list_offsets import CONNECT_PROBE_S, listening

    listed = [p for p in partitions if p in topic.partitions]
    offline = [p for p in listed if topic.partitions[p].leader < 0]
    parts = [f"{_partitions(offline)} without a leader (offline)"] if offline else []
    if brokers:
        leaders = {topic.partitions[p].leader for p in listed} & set(brokers)
        gone = leaders - listening({n: brokers[n] for n in leaders}, CONNECT_PROBE_S)
        if gone:
            stopped = [p for p in listed if topic.partitions[p].leader in gone]
            nodes = ", ".join(map(str, sorted(gone)))
            parts.append(
                f"{_partitions(stopped)} led by broker{'s' if len(gone) > 1 else ''} {nodes},"
                " which takes no connection (stopped or killed)"
            )
    return "; ".join(parts)


def _partitions(indexes: list[int]) -> str:
    return f"partition{'s' if len(indexes) > 1 else ''} {', '.join(map(str, indexes))}"
