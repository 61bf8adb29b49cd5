"""Masking policies: which principal gets which tagged fields of which topics masked, and
how. One policy is one record of the compacted topic `__contextplane_masking`: key the
policy's name, value JSON `{"principal", "topic", "tags", "action"[, "keys"]}`; a
tombstone deletes it. The broker folds the topic (broker/masking_policies.py);
`contextplane mask` writes it. Both read a value with `parse_policy`, so what the CLI
accepts the broker applies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MASKING_TOPIC = "__contextplane_masking"

# Bounds on what a writer of the topic may give the broker.
POLICY_VALUE_BYTES_MAX = 64 * 1024
POLICY_NAME_CHARS_MAX = 249
POLICY_TAGS_MAX = 100
TAG_CHARS_MAX = 256
KEEP_LAST_MAX = 1024

REDACT = "redact"
NULL = "null"
HASH = "hash"
KEEP_LAST = "keep-last"
# When several policies cover one field, the most destructive action wins.
ACTION_STRENGTH = (NULL, REDACT, HASH, KEEP_LAST)
_KEEP_LAST = re.compile(r"keep-last-([0-9]{1,4})")

# What a policy does to record keys. `masked` (the default): a key in the Confluent wire
# format whose schema id is registered is masked as a value is (one that then does not
# decode is sent null); any other key (a string, a number) is sent as stored. `clear`:
# keys are sent as stored. `fail-closed`: keys are treated exactly as values, so a key
# without the wire format or with an unknown id is sent null too.
KEYS_MASKED = "masked"
KEYS_CLEAR = "clear"
KEYS_FAIL_CLOSED = "fail-closed"
KEYS_MODES = (KEYS_MASKED, KEYS_CLEAR, KEYS_FAIL_CLOSED)


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # one of ACTION_STRENGTH
    keep: int = 0  # keep-last-N: N

    def __str__(self) -> str:
        return f"{KEEP_LAST}-{self.keep}" if self.kind == KEEP_LAST else self.kind

    @property
    def strength(self) -> int:
        """Lower is stronger (ACTION_STRENGTH's order)."""
        return ACTION_STRENGTH.index(self.kind)


@dataclass(frozen=True, slots=True)
class MaskingPolicy:
    name: str
    principal: str  # `User:copilot`, or `*` for every principal
    topic: str  # a topic name, or a prefix followed by `*`
    tags: frozenset[str]
    action: Action
    keys: str = KEYS_MASKED  # one of KEYS_MODES

    def covers(self, principal: str, topic: str) -> bool:
        if self.principal not in ("*", principal):
            return False
        if self.topic.endswith("*"):
            return topic.startswith(self.topic[:-1])
        return topic == self.topic

    def to_json(self) -> dict[str, object]:
        return {
            "principal": self.principal,
            "topic": self.topic,
            "tags": sorted(self.tags),
            "action": str(self.action),
            "keys": self.keys,
        }


def parse_action(text: str) -> Action:
    if text in (REDACT, NULL, HASH):
        return Action(text)
    found = _KEEP_LAST.fullmatch(text)
    if found and int(found.group(1)) <= KEEP_LAST_MAX:
        return Action(KEEP_LAST, int(found.group(1)))
    raise ValueError(
        f"action {text!r} is not one of redact, null, hash, keep-last-N (N at most {KEEP_LAST_MAX})"
    )


def check_name(name: str) -> str:
    if not name or len(name) > POLICY_NAME_CHARS_MAX:
        raise ValueError(f"a policy name has 1 to {POLICY_NAME_CHARS_MAX} characters")
    return name


def make_policy(
    name: str, principal: str, topic: str, tags: list[str], action: str, keys: str = KEYS_MASKED
) -> MaskingPolicy:
    """A policy from its parts; ValueError naming what is wrong."""
    check_name(name)
    if principal != "*":
        kind, sep, who = principal.partition(":")
        if not sep or not kind or not who:
            raise ValueError(f"principal {principal!r} is not TYPE:NAME (User:alice) or *")
    if not topic or topic == "*" or len(topic) > POLICY_NAME_CHARS_MAX:
        raise ValueError("topic is a name or a prefix followed by * (not * alone)")
    if not tags or len(tags) > POLICY_TAGS_MAX:
        raise ValueError(f"a policy names 1 to {POLICY_TAGS_MAX} tags")
    if any(not isinstance(t, str) or not t or len(t) > TAG_CHARS_MAX for t in tags):
        raise ValueError(f"a tag is a string of 1 to {TAG_CHARS_MAX} characters")
    if keys not in KEYS_MODES:
        raise ValueError(f"keys {keys!r} is not one of {', '.join(KEYS_MODES)}")
    return MaskingPolicy(name, principal, topic, frozenset(tags), parse_action(action), keys)


def parse_policy(name: str, value: bytes) -> MaskingPolicy:
    """The policy a record of the masking topic holds; ValueError if it is not one."""
    if len(value) > POLICY_VALUE_BYTES_MAX:
        raise ValueError(f"a policy value is at most {POLICY_VALUE_BYTES_MAX} bytes")
    try:
        body = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"a policy value is JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("a policy value is a JSON object")
    principal, topic, tags, action = (body.get(k) for k in ("principal", "topic", "tags", "action"))
    if not (isinstance(principal, str) and isinstance(topic, str) and isinstance(action, str)):
        raise ValueError("principal, topic and action are strings")
    if not isinstance(tags, list):
        raise ValueError("tags is a list of strings")
    keys = body.get("keys", KEYS_MASKED)  # policies written before keys were masked
    if not isinstance(keys, str):
        raise ValueError("keys is a string")
    return make_policy(name, principal, topic, tags, action, keys)


def encode_policy(policy: MaskingPolicy) -> bytes:
    return json.dumps(policy.to_json(), separators=(",", ":")).encode()
