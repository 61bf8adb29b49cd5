"""The principal of a mutual-TLS client, as Kafka's DefaultKafkaPrincipalBuilder gives it:
`User:` + the certificate subject (RFC 2253, as Java's `X500Principal.getName()` writes
it) mapped by `ssl.principal.mapping.rules` (Kafka's SslPrincipalMapper).

Rules, separated by commas: `DEFAULT` (the subject itself) or
`RULE:pattern/replacement/[LU]`, where the pattern must match the whole subject and the
replacement may name its groups as `$1`; `L`/`U` lower- or upper-case the result. The
first rule that matches decides; none matching refuses the client (as Kafka does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_RULES = "DEFAULT"
_RULE_PATTERN = r"(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_RULE_SPLITTER = re.compile(r"\s*(" + _RULE_PATTERN + r")\s*(,\s*|$)")
_RULE_PARSER = re.compile(_RULE_PATTERN)
_BACK_REFERENCE = re.compile(r"\$(\d+)")


class NoMatchingRule(ValueError):
    """No rule applies to the subject: the client is refused."""


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    lower: bool = False
    upper: bool = False

    def apply(self, subject: str) -> str | None:
        if self.pattern is None:
            return subject
        if self.pattern.fullmatch(subject) is None:
            return None
        groups = self.pattern.groups
        # Java's String.replaceAll over the whole subject, with Java's replacement syntax.
        result = self.pattern.sub(lambda m: _java_replacement(self.replacement, m, groups), subject)
        if self.lower:
            return result.lower()
        if self.upper:
            return result.upper()
        return result

    def __str__(self) -> str:
        if self.pattern is None:
            return "DEFAULT"
        text = f"RULE:{self.pattern.pattern}/{self.replacement}"
        return text + ("/L" if self.lower else "/U" if self.upper else "")


def _java_replacement(replacement: str, match: re.Match[str], groups: int) -> str:
    """`Matcher.appendReplacement`'s rules: `\\x` is x, `$n` a group (the longest number
    that names one); a reference past the last group is literal, as Kafka escapes it."""
    out: list[str] = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\" and i + 1 < len(replacement):
            out.append(replacement[i + 1])
            i += 2
            continue
        if char == "$" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
            j = i + 1
            number = int(replacement[j])
            j += 1
            if number > groups:
                out.append(char)  # Kafka turns an invalid reference into a literal
                i += 1
                continue
            while j < len(replacement) and replacement[j].isdigit():
                longer = number * 10 + int(replacement[j])
                if longer > groups:
                    break
                number = longer
                j += 1
            out.append(match.group(number) or "")
            i = j
            continue
        out.append(char)
        i += 1
    return "".join(out)


class SslPrincipalMapper:
    """`ssl.principal.mapping.rules`, parsed once; `name(subject)` maps one subject."""

    def __init__(self, rules: str | None = DEFAULT_RULES) -> None:
        parsed = (_parse(text) for text in _split(DEFAULT_RULES if rules is None else rules))
        self.rules: list[_Rule] = [rule for rule in parsed if rule is not None]

    def name(self, subject: str) -> str:
        for rule in self.rules:
            principal = rule.apply(subject)
            if principal is not None:
                return principal
        raise NoMatchingRule(f"No rules apply to {subject}, rules {self}")

    def __str__(self) -> str:
        return "[" + ", ".join(str(rule) for rule in self.rules) + "]"


def _split(rules: str) -> list[str]:
    return [match.group(1) for match in _RULE_SPLITTER.finditer(rules.strip())]


def _parse(text: str) -> _Rule | None:
    match = _RULE_PARSER.match(text)
    if match is None:
        raise ValueError(f"Invalid rule: {text}")
    if match.end() != len(text):
        raise ValueError(f"Invalid rule: `{text}`, unmatched substring: `{text[match.end() :]}`")
    if match.group(1) is not None:
        return _Rule(None)
    if match.group(2) is not None:
        try:
            pattern = re.compile(match.group(2))
        except re.error as exc:
            raise ValueError(f"Invalid rule: `{text}`: {exc}") from None
        flag = match.group(6)
        return _Rule(pattern, match.group(4), flag == "L", flag == "U")
    return None  # an empty rule is ignored
