"""Kafka's `sasl.jaas.config` values: one JAAS login module entry,

    <LoginModuleClass> <required|requisite|sufficient|optional> [key=value ...];

values quoted ("...", with backslash escapes) or bare words. Parsed strictly, as Kafka's
JaasConfig: exactly one module, a control flag, every option `key=value`, a closing
semicolon; a mistake is a `JaasError` naming what is wrong. `server_options` then checks
that the module is the one the mechanism needs and that its options are ones it has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
MODULES = {
    "PLAIN": PLAIN_MODULE,
    "SCRAM-SHA-256": SCRAM_MODULE,
    "SCRAM-SHA-512": SCRAM_MODULE,
    "OAUTHBEARER": OAUTHBEARER_MODULE,
}
FLAGS = ("required", "requisite", "sufficient", "optional")
# Options a broker-side module may carry (username and password: the broker's own login
# on its inter-broker listener, security/inter_broker.py).
_OPTIONS = {
    PLAIN_MODULE: ("username", "password"),
    SCRAM_MODULE: ("username", "password", "tokenauth"),
    OAUTHBEARER_MODULE: (),
}
# Kafka's options for unsecured (unsigned) OAUTHBEARER tokens, for development.
_UNSECURED_PREFIXES = ("unsecuredLogin", "unsecuredValidator")
_TOKEN = re.compile(
    r'\s*(?:(?P<quoted>"(?:[^"\\]|\\.)*")|(?P<punct>[=;])|(?P<word>[^\s=;"]+))', re.S
)


class JaasError(ValueError):
    """A sasl.jaas.config value is not a valid JAAS entry for its mechanism."""


@dataclass(frozen=True)
class JaasEntry:
    module: str
    flag: str
    options: dict[str, str]


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position:].strip() == "":
                break
            raise JaasError(f"Invalid JAAS config: unexpected {text[position:][:20]!r}")
        position = match.end()
        if match["quoted"] is not None:
            found.append(("value", re.sub(r"\\(.)", r"\1", match["quoted"][1:-1])))
        elif match["punct"] is not None:
            found.append((match["punct"], match["punct"]))
        elif match["word"] is not None:
            found.append(("word", match["word"]))
    return found


def parse(text: str) -> JaasEntry:
    """The one login module entry of a sasl.jaas.config value."""
    tokens = _tokens(text)
    entries: list[JaasEntry] = []
    index = 0
    while index < len(tokens):
        kind, module = tokens[index]
        if kind != "word":
            raise JaasError(f"Invalid JAAS config: expected a login module class, found {module!r}")
        if index + 1 >= len(tokens) or tokens[index + 1][0] != "word":
            raise JaasError("Invalid JAAS config: Login module control flag not specified")
        flag = tokens[index + 1][1].lower()
        if flag not in FLAGS:
            raise JaasError(
                f"Invalid JAAS config: invalid control flag {tokens[index + 1][1]!r} "
                f"(one of {', '.join(FLAGS)})"
            )
        index += 2
        options: dict[str, str] = {}
        while True:
            if index >= len(tokens):
                raise JaasError("Invalid JAAS config: the entry does not end with ';'")
            kind, key = tokens[index]
            if kind == ";":
                index += 1
                break
            if kind != "word":
                raise JaasError(f"Invalid JAAS config: expected an option name, found {key!r}")
            if index + 2 >= len(tokens) or tokens[index + 1][0] != "=":
                raise JaasError(f"Invalid JAAS config: value not specified for key '{key}'")
            value_kind, value = tokens[index + 2]
            if value_kind not in ("word", "value"):
                raise JaasError(f"Invalid JAAS config: value not specified for key '{key}'")
            if key in options:
                raise JaasError(f"Invalid JAAS config: option '{key}' given twice")
            options[key] = value
            index += 3
        entries.append(JaasEntry(module, flag, options))
    if len(entries) != 1:
        raise JaasError(
            f"JAAS config property contains {len(entries)} login modules, should be 1 module"
        )
    return entries[0]


def server_options(mechanism: str, text: str) -> dict[str, str]:
    """The options of `mechanism`'s login module entry, checked."""
    entry = parse(text)
    expected = MODULES[mechanism]
    if entry.module != expected:
        raise JaasError(f"{mechanism} needs the login module {expected}, not {entry.module}")
    allowed = _OPTIONS[expected]
    for key in entry.options:
        if expected == OAUTHBEARER_MODULE and key.startswith(_UNSECURED_PREFIXES):
            raise JaasError(
                f"{expected}: {key} is for unsecured (unsigned) tokens, which are not "
                "accepted: tokens are validated against sasl.oauthbearer.jwks.endpoint.url"
            )
        if key in allowed or (expected == PLAIN_MODULE and key.startswith("user_") and key[5:]):
            continue
        extra = " or user_<name>" if expected == PLAIN_MODULE else ""
        raise JaasError(
            f"{expected}: unknown option {key!r} (options: {', '.join(allowed) or 'none'}{extra})"
        )
    return entry.options


def plain_users(options: dict[str, str]) -> dict[str, str]:
    """PlainLoginModule's `user_<name>="<password>"` entries: name -> password."""
    return {key[5:]: value for key, value in options.items() if key.startswith("user_")}
