"""Run the scenario corpus against Apache Kafka and contextplane and diff what clients saw.

Every leaf of a scenario's observations is compared. A difference is *deliberate* when a
row of conformance/differences.md (the reviewed list) matches its scenario and path;
every other difference is *unexplained*. conformance/differential.allow lists the
scenarios that currently match Kafka (up to deliberate differences): one of those
showing an unexplained difference is a regression and fails the gate.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.scenarios import Scenario, load_all, run_scenario

HERE = Path(__file__).resolve().parent
DIFFERENCES_MD = HERE / "differences.md"
ALLOW_FILE = HERE / "differential.allow"
_MISSING = "<absent>"


@dataclass(frozen=True)
class Deliberate:
    scenario: str  # fnmatch pattern
    path: str  # fnmatch pattern
    reason: str


@dataclass
class Difference:
    scenario: str
    path: str
    kafka: Any
    contextplane: Any
    reason: str | None = None  # set when deliberate
    row: Deliberate | None = None  # the differences.md row that explains it

    def line(self) -> str:
        tag = "deliberate" if self.reason else "DIFF"
        text = (
            f"[{tag}] {self.scenario}: {self.path}: kafka={_show(self.kafka)} "
            f"contextplane={_show(self.contextplane)}"
        )
        if self.reason:
            text += f"  ({self.reason})"
        return text


@dataclass
class ScenarioResult:
    name: str
    kafka: dict[str, Any]
    contextplane: dict[str, Any]
    differences: list[Difference] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if d.reason is None]

    @property
    def broken(self) -> bool:
        """The scenario raised against Apache Kafka: a harness bug, never conforming."""
        return "!trace" in self.kafka

    @property
    def conforms(self) -> bool:
        return not self.unexplained and not self.broken


@dataclass
class DifferentialReport:
    results: list[ScenarioResult]
    allowlist: set[str]
    seconds: float = 0.0

    @property
    def differences(self) -> list[Difference]:
        return [d for r in self.results for d in r.differences]

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if d.reason is None]

    @property
    def conforming(self) -> list[str]:
        return [r.name for r in self.results if r.conforms]

    @property
    def regressions(self) -> list[str]:
        return [r.name for r in self.results if r.name in self.allowlist and not r.conforms]

    def unused_rows(self, rows: list[Deliberate]) -> list[Deliberate]:
        """Rows of differences.md whose scenario ran but matched no difference: contextplane
        may now match Kafka there, so the row should go."""
        ran = [r.name for r in self.results]
        used = {d.row for d in self.differences if d.row is not None}
        return [
            row
            for row in rows
            if any(fnmatch.fnmatchcase(n, row.scenario) for n in ran) and row not in used
        ]

    @property
    def newly_conforming(self) -> list[str]:
        return [r.name for r in self.results if r.conforms and r.name not in self.allowlist]

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "scenarios": len(self.results),
            "conforming": self.conforming,
            "regressions": self.regressions,
            "newly_conforming": self.newly_conforming,
            "differences": [
                {k: v for k, v in d.__dict__.items() if k != "row"} for d in self.differences
            ],
            "observations": {
                r.name: {"kafka": r.kafka, "contextplane": r.contextplane} for r in self.results
            },
        }


def _show(value: Any) -> str:
    if value is _MISSING or value == _MISSING:
        return _MISSING
    return json.dumps(value, default=str)


# --- the reviewed list ---------------------------------------------------------------------

_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|(.+)\|\s*$")


def load_deliberate(path: Path = DIFFERENCES_MD) -> list[Deliberate]:
    """Rows of the table in differences.md: | `scenario glob` | `path glob` | reason |"""
    rows = []
    for line in path.read_text().splitlines():
        match = _ROW.match(line.strip())
        if match:
            rows.append(Deliberate(match[1].strip(), match[2].strip(), match[3].strip()))
    return rows


def load_allowlist(path: Path = ALLOW_FILE) -> set[str]:
    if not path.exists():
        return set()
    return {
        line.split("#", 1)[0].strip()
        for line in path.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    }


# --- comparing -------------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested dicts/lists as {'a.b.0.c': leaf}. Keys starting with '!' other
    than '!stopped' are run information (timings, traces) and are not compared."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if not value:
            out[prefix] = {}
        for key, item in value.items():
            key = str(key)
            if key.startswith("!") and key != "!stopped":
                continue
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    elif isinstance(value, list | tuple):
        if not value:
            out[prefix] = []
        for index, item in enumerate(value):
            # Indices as ".N", not "[N]": paths are matched with fnmatch in
            # differences.md, where "[...]" is a character class.
            out.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix] = value
    return out


def compare(
    name: str, kafka: dict[str, Any], contextplane: dict[str, Any], deliberate: list[Deliberate]
) -> list[Difference]:
    left, right = flatten(kafka), flatten(contextplane)
    order = list(left) + [k for k in right if k not in left]
    diffs = []
    for path in order:
        a, b = left.get(path, _MISSING), right.get(path, _MISSING)
        if a == b:
            continue
        match = None
        for row in deliberate:
            if fnmatch.fnmatchcase(name, row.scenario) and fnmatch.fnmatchcase(path, row.path):
                match = row
                break
        diffs.append(Difference(name, path, a, b, match and match.reason, match))
    return diffs


def run(
    scenarios: list[Scenario],
    kafka_bootstrap: str,
    contextplane_bootstrap: str,
    *,
    log=print,  # noqa: ANN001
) -> DifferentialReport:
    """Each scenario runs against both brokers at once (two threads), scenarios in order."""
    deliberate = load_deliberate()
    allow = load_allowlist()
    started = time.monotonic()
    results = []
    with ThreadPoolExecutor(2) as pool:
        for sc in scenarios:
            ref = pool.submit(run_scenario, sc, kafka_bootstrap, "kafka")
            ours = pool.submit(run_scenario, sc, contextplane_bootstrap, "contextplane")
            k_obs, c_obs = ref.result(), ours.result()
            result = ScenarioResult(
                sc.name, k_obs, c_obs, compare(sc.name, k_obs, c_obs, deliberate)
            )
            results.append(result)
            status = "ok" if result.conforms else f"{len(result.unexplained)} diff"
            if result.broken:
                status = "SCENARIO ERROR (kafka)"
            if result.differences and result.conforms:
                status += f" ({len(result.differences)} deliberate)"
            log(
                f"  {sc.name:<45} {status:<22} "
                f"kafka {k_obs.get('!seconds', 0):>5}s  contextplane {c_obs.get('!seconds', 0):>5}s"
            )
    return DifferentialReport(results, allow, time.monotonic() - started)


def select(quick: bool, patterns: list[str] | None = None) -> list[Scenario]:
    scenarios = list(load_all().values())
    if patterns:
        scenarios = [s for s in scenarios if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]
    if quick:
        scenarios = [s for s in scenarios if s.quick]
    return scenarios


def write_report(report: DifferentialReport, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "differential.json").write_text(json.dumps(report.to_json(), indent=1, default=str))
    lines = [d.line() for d in report.differences]
    for r in report.results:
        for side in ("kafka", "contextplane"):
            obs = getattr(r, side)
            if "!trace" in obs:
                lines.append(f"--- {r.name} stopped on {side}:\n{obs['!trace']}")
    path = out_dir / "differential.txt"
    path.write_text("\n".join(lines) + "\n")
    return path
