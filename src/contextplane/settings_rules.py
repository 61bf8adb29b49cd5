"""The rules across settings, beyond each one's range in the settings table: pairs that
must be ordered (heartbeat within the session, the authentication delay within the idle
timeout), values that name something that must exist, and the SASL listeners' mechanisms.
`settings.load_settings` refuses a configuration that breaks one, with this message."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from contextplane import settings_consumer_groups, tracing
from contextplane.broker import replica_selector
from contextplane.client_properties import ClientPropertyError, read_client_properties
from contextplane.security import inter_broker, oauthbearer_settings, sasl_settings

if TYPE_CHECKING:
    from contextplane.settings import Settings

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def first_problem(settings: Settings) -> str | None:
    """The first rule across settings that `settings` breaks, as the message naming it
    (None: it keeps them all)."""
    if settings.console_context_url and not _http_url(settings.console_context_url):
        return (
            f"console.context.url: {settings.console_context_url!r} is not an http:// or"
            " https:// URL with a host (e.g. http://127.0.0.1:8090)"
        )
    if settings.queued_max_request_bytes == 0:
        return "queued.max.request.bytes: must be -1 (no bound) or positive"
    if settings.authorizer_class_name not in ("", STANDARD_AUTHORIZER):
        return (
            f"authorizer.class.name: {settings.authorizer_class_name!r} is not available;"
            f" use {STANDARD_AUTHORIZER} or leave it empty"
        )
    if settings.replica_selector_class not in replica_selector.SELECTORS:
        return (
            f"replica.selector.class: {settings.replica_selector_class!r} is not available;"
            f" use {replica_selector.RACK_AWARE_SELECTOR},"
            f" {replica_selector.LEADER_SELECTOR} or leave it empty"
        )
    for principal in settings.super_users.split(";"):
        # Kafka parses each one as principalType:principalName, or refuses to start.
        if principal.strip() and ":" not in principal:
            return (
                f"super.users: {principal.strip()!r} is not principalType:principalName"
                " (e.g. User:admin; principals separated by semicolons)"
            )
    internal = internal_client_problem(settings)
    if internal is not None:
        return internal
    if settings.connection_failed_authentication_delay_ms >= settings.connections_max_idle_ms:
        return (
            "connection.failed.authentication.delay.ms="
            f"{settings.connection_failed_authentication_delay_ms} should always be less than"
            f" connections.max.idle.ms={settings.connections_max_idle_ms} to prevent failed"
            " authentication responses from timing out"
        )
    if settings.broker_heartbeat_interval_ms >= settings.broker_session_timeout_ms:
        # Otherwise the lease would lapse between two renewals.
        return (
            f"broker.heartbeat.interval.ms={settings.broker_heartbeat_interval_ms} must be"
            f" less than broker.session.timeout.ms={settings.broker_session_timeout_ms}"
        )
    bounds = _share_bounds_problem(settings)
    if bounds is not None:
        return bounds
    consumer_groups = settings_consumer_groups.first_problem(settings)
    if consumer_groups is not None:
        return consumer_groups
    sasl_listeners = [(s.name, s.security_protocol) for s in settings.listeners if s.sasl]
    try:
        sasl_settings.check(
            settings.sasl_enabled_mechanisms,
            settings.listener_sasl,
            sasl_listeners,
            oauthbearer_settings.from_settings(settings),
        )
    except sasl_settings.SaslSettingsError as exc:
        return str(exc)
    inter = inter_broker.problem(settings)
    if inter is not None:
        return inter
    if settings.registry_authentication_method.upper() not in ("NONE", "BASIC", "BEARER"):
        return (
            "contextplane.registry.authentication.method: "
            f"{settings.registry_authentication_method!r} is not NONE, BASIC or BEARER"
        )
    if settings.audit_overflow_policy not in ("fail-open", "fail-closed"):
        return (
            f"contextplane.audit.overflow.policy: {settings.audit_overflow_policy!r} is not"
            " fail-open or fail-closed"
        )
    url = settings.metadata_url
    if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        # Not echoed whole: a PostgreSQL URL may carry a password.
        return (
            f"metadata.url ({url.partition(':')[0]}:…) must be sqlite:///path (relative to the"
            " working directory; sqlite:////path for an absolute one) or"
            " postgresql://user[:password]@host:port/database"
        )
    try:
        tracing.traces_url(settings.otel_exporter_otlp_endpoint, environ={})
    except tracing.TracingConfigError as exc:
        return str(exc)
    overrides = settings.connections_per_ip_overrides
    if settings.max_connections_per_ip == 0 and not overrides:
        return (
            "max.connections.per.ip can be set to zero only if "
            "max.connections.per.ip.overrides property is set."
        )
    return None


def internal_client_problem(settings: Settings) -> str | None:
    """`contextplane.internal.client.config` must read, and name a security protocol one
    of the listeners has."""
    if not settings.internal_client_config:
        return None
    try:
        config = read_client_properties(settings.internal_client_config)
    except ClientPropertyError as exc:
        return f"contextplane.internal.client.config: {exc}"
    protocol = config.get("security.protocol", "PLAINTEXT").upper()
    if not any(spec.security_protocol == protocol for spec in settings.listeners):
        return f"contextplane.internal.client.config: no listener is {protocol}"
    return None


def _http_url(text: str) -> bool:
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 (raises for a port that is not a number or out of range)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.hostname)


def _share_bounds_problem(settings: Settings) -> str | None:
    """Kafka's require on each `group.share.min/max.*` pair (its message)."""
    for what in ("session.timeout.ms", "heartbeat.interval.ms", "record.lock.duration.ms"):
        low_name, high_name = f"group.share.min.{what}", f"group.share.max.{what}"
        low = getattr(settings, low_name.replace(".", "_"))
        high = getattr(settings, high_name.replace(".", "_"))
        if high < low:
            return f"{high_name} must be greater than or equal to {low_name}"
    # ShareGroupConfig's requires: the broker's value itself within its bounds.
    for what in ("delivery.count.limit", "partition.max.record.locks"):
        names = (f"group.share.min.{what}", f"group.share.{what}", f"group.share.max.{what}")
        low, value, high = (getattr(settings, n.replace(".", "_")) for n in names)
        if high < value:
            return f"{names[2]} must be greater than or equal to {names[1]}"
        if value < low:
            return f"{names[1]} must be greater than or equal to {names[0]}"
    # GroupCoordinatorConfig's requires on the assignment interval, in its order.
    names = (
        "group.share.min.assignment.interval.ms",
        "group.share.assignment.interval.ms",
        "group.share.max.assignment.interval.ms",
    )
    low, value, high = (getattr(settings, n.replace(".", "_")) for n in names)
    if high < low:
        return f"{names[2]} must be greater than or equal to {names[0]}"
    if value < low:
        return f"{names[1]} must be greater than or equal to {names[0]}"
    if value > high:
        return f"{names[1]} must be less than or equal to {names[2]}"
    return None
