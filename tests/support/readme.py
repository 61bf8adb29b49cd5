"""The README's walkthroughs as data, so that tests run the commands a reader pastes:
the fenced blocks of one section, their shell commands (continuation lines joined) and
the files their here-documents write."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_HEREDOC = re.compile(r"^cat > (\S+) <<('?)EOF\2\n(.*?)^EOF$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class HereDoc:
    """A file a walkthrough writes with `cat > NAME <<EOF`; `expands`: unquoted EOF, so
    the shell substitutes $VARIABLES in it."""

    text: str
    expands: bool


@dataclass(frozen=True)
class Walkthrough:
    shell: list[str]  # commands, in order, continuation lines joined
    files: dict[str, HereDoc]
    python: list[str]  # the section's Python blocks

    def command(self, starts: str) -> str:
        """The one command that starts with `starts`."""
        found = [c for c in self.shell if c.startswith(starts)]
        assert len(found) == 1, f"README: {len(found)} commands start with {starts!r}"
        return found[0]

    def commands(self, starts: str) -> list[str]:
        return [c for c in self.shell if c.startswith(starts)]


def section(heading: str, readme: Path = README) -> str:
    """The text under `heading` up to the next heading of the same or a higher level
    (lines inside fenced blocks are not headings)."""
    level = len(heading.split(" ", 1)[0])
    lines = readme.read_text().splitlines(keepends=True)
    start = lines.index(heading + "\n") + 1
    fenced = False
    for end in range(start, len(lines)):
        line = lines[end]
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (found := re.match(r"(#+) ", line)) and len(found[1]) <= level:
            return "".join(lines[start:end])
    return "".join(lines[start:])


def walkthrough(heading: str, readme: Path = README) -> Walkthrough:
    shell: list[str] = []
    files: dict[str, HereDoc] = {}
    python: list[str] = []
    for language, body in _FENCE.findall(section(heading, readme)):
        if language == "python":
            python.append(body)
            continue
        if language != "sh":
            continue
        for name, quote, text in _HEREDOC.findall(body):
            files[name] = HereDoc(text, expands=not quote)
        body = _HEREDOC.sub(lambda m: f"cat > {m.group(1)}", body)
        for line in body.replace("\\\n", " ").splitlines():
            line = " ".join(line.split())
            if line and not line.startswith("#"):
                shell.append(line)
    return Walkthrough(shell, files, python)
