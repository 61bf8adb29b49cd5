"""`contextplane registry`: a schema registry with Confluent's REST API whose state is the
`_schemas` topic of any Kafka cluster (RFC 0005).

Its Kafka client (confluent_kafka) and store load when the registry runs, not whenever
the program starts: `contextplane up` imports this module for its parser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contextplane.cli.kafka_client import ConfigError, security_config
from contextplane.logsafe import log_to_stderr
from contextplane.security.registry_access import RegistryAccessError
from contextplane.security.tls import TlsConfigError
from contextplane.services.schema_registry.errors import RegistryError
from contextplane.services.schema_registry.https import registry_tls
from contextplane.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from contextplane.broker.context import Services

DEFAULT_PORT = 8081  # Confluent's
# The store's own default, not imported from it: the store loads confluent_kafka.
INIT_TIMEOUT_S = 60.0
INIT_TIMEOUT_MAX_S = 86_400.0  # a day: longer is a mistake, not a wait
# What a Basic password may be checked with (cluster_logins.py's; not imported from it:
# it loads confluent_kafka).
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


def add_parser(sub: Any) -> None:
    registry = sub.add_parser(
        "registry", help="serve a schema registry (Confluent's API) kept in a Kafka topic"
    )
    registry.add_argument(
        "--bootstrap",
        "--bootstrap-server",
        dest="bootstrap",
        required=True,
        help="host:port of the Kafka cluster (either spelling, as Kafka's tools)",
    )
    registry.add_argument(
        "--command-config", type=Path, help="client security properties (Kafka's names)"
    )
    registry.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    registry.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (8081)")
    registry.add_argument(
        "--topic",
        help="the state's topic (default _schemas; broker-side validation and masking "
        "read only _schemas)",
    )
    registry.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="of the topic when it is created (default: the cluster's default)",
    )
    registry.add_argument("--timeout", type=float, default=30.0, help="seconds for Kafka calls")
    registry.add_argument(
        "--init-timeout",
        type=float,
        default=INIT_TIMEOUT_S,
        help="seconds the start may wait for the topic to be created, led and replayed"
        " (Confluent's kafkastore.init.timeout.ms; default 60)",
    )
    registry.add_argument(
        "--config",
        type=Path,
        help="a properties file with the login and HTTPS settings in the broker's names"
        " (contextplane.registry.authentication.method, super.users, sasl.oauthbearer.*,"
        " contextplane.registry.ssl.*)",
    )
    registry.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="one such setting"
    )
    registry.add_argument(
        "--login-mechanism",
        choices=MECHANISMS,
        help="the SASL mechanism a Basic password is checked with on the cluster (default:"
        " --command-config's sasl.mechanism when it is one of these, else SCRAM-SHA-512)",
    )
    registry.add_argument(
        "--audit-topic",
        help="also produce the audit records (changes, denials, failed logins) to this"
        " topic, created when missing (they always go to the log)",
    )
    registry.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    log_to_stderr(args.log_level)
    if not 0 < args.init_timeout <= INIT_TIMEOUT_MAX_S:
        print(
            f"contextplane registry: --init-timeout {args.init_timeout:g} is not in"
            f" (0, {INIT_TIMEOUT_MAX_S:g}] seconds",
            file=sys.stderr,
        )
        return 2
    try:
        security = security_config(args.command_config)
        settings = _login_settings(args)
        tls = registry_tls(settings)
    except (ConfigError, SettingsError, TlsConfigError, OSError) as exc:
        print(f"contextplane registry: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, security, settings, tls))
    except KeyboardInterrupt:
        return 0
    except (RegistryError, RegistryAccessError, KafkaException, OSError) as exc:
        print(f"contextplane registry: {exc}", file=sys.stderr)
        return 1


def _login_settings(args: argparse.Namespace) -> Settings:
    """`--config` and `--set` read as `contextplane up` reads them (SettingsError)."""
    overrides: dict[str, str] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"--set expects NAME=VALUE, got {item!r}")
        overrides[name] = value
    return load_settings(args.config, overrides=overrides)


def _login_mechanism(args: argparse.Namespace, security: dict[str, str]) -> str:
    if args.login_mechanism:
        return str(args.login_mechanism)
    own = security.get("sasl.mechanism", "").upper()
    return own if own in MECHANISMS else MECHANISMS[0]


async def _serve(
    args: argparse.Namespace,
    security: dict[str, str],
    settings: Settings,
    tls: ssl.SSLContext | None,
) -> int:
    from contextplane.services.schema_registry.cluster_access import open_cluster_access
    from contextplane.services.schema_registry.dek_records import DEK_TOPIC
    from contextplane.services.schema_registry.server import run_registry
    from contextplane.services.schema_registry.store import SCHEMAS_TOPIC, KafkaStore

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    topic = args.topic or SCHEMAS_TOPIC
    store = KafkaStore(
        args.bootstrap,
        topic=topic,
        replication_factor=args.replication_factor,
        timeout_s=args.timeout,
        init_timeout_s=args.init_timeout,
        client_config=security,
    )
    keys_store = KafkaStore(
        args.bootstrap,
        topic=DEK_TOPIC,
        replication_factor=args.replication_factor,
        timeout_s=args.timeout,
        init_timeout_s=args.init_timeout,
        client_config=security,
    )
    access = await open_cluster_access(
        settings,
        security | {"bootstrap.servers": args.bootstrap},
        schemas_topic=topic,
        login_mechanism=_login_mechanism(args, security),
        audit_topic=args.audit_topic,
        replication_factor=args.replication_factor,
        timeout_s=args.timeout,
    )
    try:
        await run_registry(store, args.host, args.port, stop, access, tls, keys_store)
    finally:
        if access is not None:
            await access.close()
    return 0


class RegistryBeside:
    """The registry as a task of `contextplane up`, a client of that broker."""

    def __init__(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self._task = task
        self._stop = stop

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):  # reported when it ended (_report)
            await self._task


def start_beside(
    host: str, broker_port: int, port: int, services: Services | None = None
) -> RegistryBeside:
    """`services`: the broker's, whose SCRAM users, token validation, ACLs and audit log
    guard the registry as its settings say (security/registry_access.py), and whose
    `contextplane.registry.ssl.*` settings give it HTTPS (TlsConfigError)."""
    from contextplane.security.registry_access import registry_access
    from contextplane.services.schema_registry.dek_records import DEK_TOPIC
    from contextplane.services.schema_registry.server import run_registry
    from contextplane.services.schema_registry.store import KafkaStore

    access = None
    tls: ssl.SSLContext | None = None
    init_timeout_s = INIT_TIMEOUT_S
    if services is not None:
        settings = services.settings
        tls = registry_tls(settings)
        init_timeout_s = settings.registry_kafkastore_init_timeout_ms / 1000
        access = registry_access(
            settings.registry_authentication_method,
            settings.registry_authentication_realm,
            services.scram,
            services.sasl.token_validator() if services.sasl is not None else None,
            services.authorizer,
            services.audit,
        )
    stop = asyncio.Event()
    bootstrap = f"{host}:{broker_port}"
    store = KafkaStore(bootstrap, init_timeout_s=init_timeout_s)
    keys_store = KafkaStore(bootstrap, topic=DEK_TOPIC, init_timeout_s=init_timeout_s)
    task = asyncio.create_task(run_registry(store, host, port, stop, access, tls, keys_store))
    task.add_done_callback(_report)
    return RegistryBeside(task, stop)


def _report(task: asyncio.Task[None]) -> None:
    """A registry that could not start or failed does not stop the broker: logged."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("contextplane").error("the schema registry stopped: %s", task.exception())
