"""Every third-party module the product imports (src/contextplane, at any depth: a CLI
command's lazy import too) comes from a distribution in pyproject's base dependencies,
not only from the test extra: `pip install contextplane` must give a working
`contextplane audit reads`."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "contextplane"
# Imported only where the standard library has it (with a fallback dependency before).
STANDARD_FROM_LATER_PYTHON = {"compression"}  # Python 3.14: compression.zstd


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module name -> one file importing it."""
    found: dict[str, str] = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


# Product extras: a feature that needs one imports it lazily and names the extra when it
# is missing (`contextplane cost --plot`: the `cost` extra).
PRODUCT_EXTRAS = ("cost",)


def base_dependencies() -> set[str]:
    """The [project] dependencies and those of the product extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in PRODUCT_EXTRAS:
        specs += project["optional-dependencies"][extra]
    names = {re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0] for spec in specs}
    return {_normal(name) for name in names}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_a_base_dependency() -> None:
    distributions = importlib.metadata.packages_distributions()
    base = base_dependencies()
    missing: list[str] = []
    for module, where in sorted(imported_top_level_modules().items()):
        if module in sys.stdlib_module_names or module == "contextplane":
            continue
        if module in STANDARD_FROM_LATER_PYTHON:
            continue
        providers = {_normal(d) for d in distributions.get(module, [])}
        assert providers, f"{where} imports {module}, which no installed distribution provides"
        if not providers & base:
            missing.append(f"{module} ({where}; from {', '.join(sorted(providers))})")
    assert not missing, "imported by the product but not in [project] dependencies: " + (
        "; ".join(missing)
    )
