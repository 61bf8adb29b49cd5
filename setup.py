"""Build configuration beyond pyproject.toml: the record-walk loop, compiled by mypyc.

`protocol/record_walk.py` (the hot loop of record validation) is compiled with mypyc into
the extension `contextplane.protocol._record_walk_mypyc_<hash of its source>`, from a copy
of the source under that name in build/. `contextplane/compiled.py` uses the extension
only while the source on disk still has that hash, so an edited module never runs as its
stale compiled copy. Without a C compiler (or without mypy, when build isolation is off)
the build goes on and the module runs interpreted; a type error in the module fails the
build (mypyc compiles only what type-checks; mypy names the copy in build/mypyc-src,
whose lines are the source's). An in-place build (`pip install -e .`) removes the
compiled copies of older sources.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
SOURCES = ROOT / "src"
BUILD = ROOT / "build"
COMPILED_MODULES = ["contextplane.protocol.record_walk"]


def _naming() -> ModuleType:
    """contextplane/compiled.py, loaded by path (the package is not importable here)."""
    spec = importlib.util.spec_from_file_location(
        "_contextplane_compiled", SOURCES / "contextplane" / "compiled.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source(module_name: str) -> Path:
    return SOURCES.joinpath(*module_name.split(".")).with_suffix(".py")


def _copy_for_mypyc(module_name: str, compiled_name: str) -> Path:
    """The module's source under its compiled name, in a package tree of its own (mypyc
    names an extension after the module it compiles)."""
    root = BUILD / "mypyc-src"
    parts = compiled_name.split(".")
    package = root.joinpath(*parts[:-1])
    package.mkdir(parents=True, exist_ok=True)
    for depth in range(1, len(parts)):
        root.joinpath(*parts[:depth], "__init__.py").touch()
    copy = package / f"{parts[-1]}.py"
    copy.write_bytes(_source(module_name).read_bytes())
    return copy


def _compiled_extensions() -> list[Extension]:
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        print(f"warning: record walk not compiled (no mypyc: {exc})", file=sys.stderr)
        return []
    naming = _naming()
    copies = [
        str(_copy_for_mypyc(name, naming.compiled_name(name, _source(name).read_bytes())))
        for name in COMPILED_MODULES
    ]
    extensions = mypycify(
        ["--cache-dir", str(BUILD / "mypy-cache"), *copies],
        opt_level="3",
        target_dir=str(BUILD / "mypyc"),
    )
    for extension in extensions:
        extension.optional = True  # no C compiler: the modules run interpreted
    return extensions


class BuildExtensions(build_ext):
    """build_ext that, building in place, also removes compiled copies of older sources."""

    def copy_extensions_to_source(self) -> None:
        super().copy_extensions_to_source()
        naming = _naming()
        for name in COMPILED_MODULES:
            source = _source(name)
            current = naming.compiled_name(name, source.read_bytes()).rpartition(".")[2]
            prefix = naming.compiled_stem_prefix(source.stem)
            for built in source.parent.glob(f"{prefix}*"):
                # mypyc builds the module and its shared library, `<module>__mypyc`.
                if built.name.split(".")[0].removesuffix("__mypyc") != current:
                    built.unlink()


setup(ext_modules=_compiled_extensions(), cmdclass={"build_ext": BuildExtensions})
