"""The security rows of the settings table: the authorizer, TLS, SASL and client quotas.
`settings_table.SETTINGS` places them after the connection settings."""

from __future__ import annotations

from dataclasses import dataclass

from contextplane.limits import INT_MAX
from contextplane.setting import Setting


@dataclass(frozen=True)
class InterBrokerFields:
    """The inter-broker fields of `Settings` (its base; security/inter_broker.py reads them)."""

    # The mechanism a broker logs in with on a SASL inter-broker listener (Kafka's default
    # GSSAPI is not available here: such a listener needs it set).
    sasl_mechanism_inter_broker_protocol: str = "GSSAPI"
    # Derived: the listener brokers call each other on, and the setting that named it
    # (inter.broker.listener.name or security.inter.broker.protocol; "": neither given).
    inter_broker_listener: str = ""
    inter_broker_setting: str = ""


# The security fields of `Settings` derived from other settings, not settings of their own.
SECURITY_DERIVED = frozenset(
    {"listener_ssl", "listener_sasl", "inter_broker_listener", "inter_broker_setting"}
)

SECURITY_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "authorizer.class.name",
        "authorizer_class_name",
        "",
        "`org.apache.kafka.metadata.authorizer.StandardAuthorizer` enforces Kafka ACLs "
        "(CreateAcls / DescribeAcls / DeleteAcls, kept in the metadata store); empty allows "
        "everything and the ACL APIs answer SECURITY_DISABLED, as Kafka does",
        default_text="empty (no authorizer)",
    ),
    Setting(
        "super.users",
        "super_users",
        "",
        "principals allowed everything, separated by semicolons (`User:admin;User:ops`)",
        default_text="empty (none)",
    ),
    Setting(
        "contextplane.masking.hmac.key",
        "masking_hmac_key",
        "",
        "the key of masking policies whose action is `hash` (HMAC-SHA256, hex); without "
        "one, such fields are sent null",
        default_text="empty (hashed fields are sent null)",
    ),
    Setting(
        "contextplane.registry.authentication.method",
        "registry_authentication_method",
        "",
        "who may use the schema registry `contextplane up --registry-port` serves "
        "(Confluent's `authentication.method`): `NONE`, `BASIC` (HTTP Basic checked against "
        "the broker's SCRAM users) or `BEARER` (tokens validated as the first OAUTHBEARER "
        "listener validates them); with an authorizer, subjects are authorized by ACLs",
    ),
    Setting(
        "contextplane.registry.authentication.realm",
        "registry_authentication_realm",
        "",
        "the realm the registry's 401 answers name in `WWW-Authenticate` (Confluent's "
        "`authentication.realm`)",
    ),
    Setting(
        "contextplane.registry.kafkastore.init.timeout.ms",
        "registry_kafkastore_init_timeout_ms",
        "ms",
        "how long the registry beside the broker waits to read `_schemas` to its end at "
        "start before giving up (Confluent's `kafkastore.init.timeout.ms`; "
        "`contextplane registry --init-timeout` for the standalone registry)",
        low=1,
        high=86_400_000,
    ),
    Setting(
        "contextplane.registry.ssl.keystore.location",
        "registry_ssl_keystore_location",
        "",
        "set: the schema registry serves HTTPS (Confluent's `listeners=https://...`) with "
        "this PEM file, its private key (PKCS#8, encrypted with "
        "`contextplane.registry.ssl.key.password` or not) then certificate chain, as the "
        "broker's `ssl.keystore.location` (Confluent's is a JKS or PKCS12 store: refused)",
        default_text="empty (HTTP)",
    ),
    Setting(
        "contextplane.registry.ssl.key.password",
        "registry_ssl_key_password",
        "",
        "the password of the registry's encrypted private key",
        default_text="empty",
    ),
    Setting(
        "contextplane.registry.ssl.truststore.location",
        "registry_ssl_truststore_location",
        "",
        "PEM file of the certificate authorities that the registry's HTTPS clients' "
        "certificates must chain to (`contextplane.registry.ssl.client.authentication`)",
        default_text="empty (the system's CAs)",
    ),
    Setting(
        "contextplane.registry.ssl.client.authentication",
        "registry_ssl_client_authentication",
        "",
        "Confluent's values: `REQUIRED`: an HTTPS client must present a certificate the "
        "registry's truststore trusts; `REQUESTED`: it may (one it presents must be trusted);"
        " `NONE`: not asked",
    ),
    Setting(
        "contextplane.internal.client.config",
        "internal_client_config",
        "",
        "a Kafka client properties file (as `--command-config`) of the internal consumer "
        "with which a broker of a cluster reads `_schemas` and `__contextplane_masking` from "
        "the broker leading them; it connects through this broker's first listener of the "
        "file's `security.protocol`",
        default_text="empty (PLAINTEXT, through the first PLAINTEXT listener)",
    ),
    Setting(
        "ssl.keystore.type",
        "ssl_keystore_type",
        "",
        "`PEM` only: JKS (Kafka's default) and PKCS12 keystores are refused "
        "(`openssl pkcs12 -nodes` converts a PKCS12 one to PEM)",
    ),
    Setting(
        "ssl.keystore.location",
        "ssl_keystore_location",
        "",
        "the PEM file of an SSL or SASL_SSL listener: its private key (PKCS#8, encrypted "
        "with `ssl.key.password` or not) and certificate chain; a changed file is used for "
        "new connections",
        default_text="empty",
    ),
    Setting(
        "ssl.keystore.password",
        "ssl_keystore_password",
        "",
        "a keystore's password: not used with PEM (as in Kafka, where a PEM key's password "
        "is `ssl.key.password`)",
        default_text="empty",
    ),
    Setting(
        "ssl.key.password",
        "ssl_key_password",
        "",
        "the password of the keystore's encrypted private key",
        default_text="empty",
    ),
    Setting(
        "ssl.keystore.certificate.chain",
        "ssl_keystore_certificate_chain",
        "",
        "the certificate chain in PEM, inline (instead of `ssl.keystore.location`)",
        default_text="empty",
    ),
    Setting(
        "ssl.keystore.key",
        "ssl_keystore_key",
        "",
        "the private key in PEM, inline (with `ssl.keystore.certificate.chain`)",
        default_text="empty",
    ),
    Setting(
        "ssl.truststore.type",
        "ssl_truststore_type",
        "",
        "`PEM` (JKS and PKCS12 are refused)",
    ),
    Setting(
        "ssl.truststore.location",
        "ssl_truststore_location",
        "",
        "PEM file of the certificate authorities that client certificates must chain to "
        "(`ssl.client.auth`); a changed file is used for new connections",
        default_text="empty (the system's CAs)",
    ),
    Setting(
        "ssl.truststore.password",
        "ssl_truststore_password",
        "",
        "a truststore's password: not used with PEM",
        default_text="empty",
    ),
    Setting(
        "ssl.truststore.certificates",
        "ssl_truststore_certificates",
        "",
        "trusted certificates in PEM, inline (instead of `ssl.truststore.location`)",
        default_text="empty",
    ),
    Setting(
        "ssl.enabled.protocols",
        "ssl_enabled_protocols",
        "",
        "TLS versions a listener accepts: `TLSv1.2`, `TLSv1.3` (older ones are refused)",
    ),
    Setting(
        "ssl.protocol",
        "ssl_protocol",
        "",
        "`TLSv1.3`, `TLSv1.2` or `TLS`: accepted for Kafka's files; `ssl.enabled.protocols` "
        "decides",
    ),
    Setting(
        "ssl.client.auth",
        "ssl_client_auth",
        "",
        "`required`: a client must present a certificate the truststore trusts; "
        "`requested`: it may (one it presents must be trusted); `none`: not asked. With a "
        "certificate on an SSL listener the client is `User:<subject>` (mapped by "
        "`ssl.principal.mapping.rules`), without one `User:ANONYMOUS`",
    ),
    Setting(
        "ssl.principal.mapping.rules",
        "ssl_principal_mapping_rules",
        "",
        "Kafka's rules from a certificate subject to a principal name: "
        "`RULE:pattern/replacement/[LU]` and `DEFAULT`, separated by commas",
    ),
    Setting(
        "allow.plaintext.non.loopback",
        "allow_plaintext_non_loopback",
        "",
        "a listener without TLS (PLAINTEXT, SASL_PLAINTEXT) may bind an address beyond "
        "loopback (`--host`, `listener.host`, `listeners`); off, such a listener refuses to "
        "start, so that data and credentials never cross a network in clear by accident",
    ),
    Setting(
        "allow.everyone.if.no.acl.found",
        "allow_everyone_if_no_acl_found",
        "",
        "with the authorizer on, a resource no ACL applies to is open to everyone",
    ),
    Setting(
        "sasl.enabled.mechanisms",
        "sasl_enabled_mechanisms",
        "",
        "the SASL mechanisms of SASL listeners, separated by commas: PLAIN, SCRAM-SHA-256, "
        "SCRAM-SHA-512, OAUTHBEARER (per listener: `listener.name.<l>.sasl.enabled.mechanisms`;"
        " each mechanism's JAAS entry: `listener.name.<listener>.<mechanism>.sasl.jaas.config`,"
        ' required for PLAIN, whose `user_<name>="<password>"` options are its users). '
        "Kafka's default GSSAPI (Kerberos) is not available: a SASL listener needs this set",
    ),
    Setting(
        "sasl.mechanism.inter.broker.protocol",
        "sasl_mechanism_inter_broker_protocol",
        "",
        "the mechanism a broker logs in with when it calls another broker (transaction "
        "markers, verification) on a SASL inter-broker listener (`inter.broker.listener.name`"
        " or `security.inter.broker.protocol`): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, "
        "enabled on that listener, with `username` and `password` in the listener's "
        "`listener.name.<listener>.<mechanism>.sasl.jaas.config`",
    ),
    Setting(
        "sasl.server.max.receive.size",
        "sasl_server_max_receive_size",
        "bytes",
        "the largest request frame a connection may send before it has authenticated; a "
        "larger one closes the connection before anything is allocated",
        low=1,
        high=INT_MAX,
    ),
    Setting(
        "connection.failed.authentication.delay.ms",
        "connection_failed_authentication_delay_ms",
        "ms",
        "a failed authentication's response waits this long (other connections are served "
        "meanwhile); the close follows when the client closes, or 1 s after the response, "
        "so no client reads the close before the error; must be below "
        "connections.max.idle.ms",
        low=0,
        high=INT_MAX,
    ),
    Setting(
        "connections.max.reauth.ms",
        "connections_max_reauth_ms",
        "ms",
        "the lifetime of an authenticated SASL session (KIP-368): told to the client, which "
        "re-authenticates in time; a connection past it is closed on its next request. "
        "0: sessions do not expire",
        low=0,
        high=2**63 - 1,
    ),
    # Kafka's names, defaults and ranges (QuotaConfig: at least 1 each).
    Setting(
        "quota.window.num",
        "quota_window_num",
        "",
        "client quotas (producer_byte_rate, consumer_byte_rate, request_percentage) measure "
        "a client's rate over this many windows",
        low=1,
        high=INT_MAX,
    ),
    Setting(
        "quota.window.size.seconds",
        "quota_window_size_seconds",
        "seconds",
        "the length of one quota window; a throttle for request_percentage is at most one",
        low=1,
        high=INT_MAX,
    ),
)
