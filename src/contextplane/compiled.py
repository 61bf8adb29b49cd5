"""The mypyc-compiled copy of a module, used only if it was built from exactly its source.

`setup.py` compiles `package/name.py` with mypyc into an extension named
`package._name_mypyc_<hash>`, where the hash is of the source bytes it was built from.
At import, the module's source on disk is hashed again: a developer who edits the module
without rebuilding gets the interpreted module, never a stale compiled one. Without a C
compiler at build time there is no compiled copy and the interpreted module is used.
Either way it is logged once, at import, since it costs the hot path its speed.

This module imports only the standard library: `setup.py` loads it by path to name what
it builds.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from pathlib import Path
from types import ModuleType

_log = logging.getLogger(__name__)


def compiled_name(module_name: str, source: bytes) -> str:
    """The name of the compiled copy of `module_name` built from `source`."""
    package, _, stem = module_name.rpartition(".")
    prefix = f"{package}." if package else ""
    return f"{prefix}{compiled_stem_prefix(stem)}{hashlib.sha256(source).hexdigest()[:16]}"


def compiled_stem_prefix(stem: str) -> str:
    """What the compiled copies of module `stem` are named from, whatever their source."""
    return f"_{stem}_mypyc_"


def compiled_or_interpreted(module: ModuleType) -> ModuleType:
    """The compiled copy of `module` built from its current source, else `module`."""
    assert module.__file__ is not None
    source = Path(module.__file__)
    name = compiled_name(module.__name__, source.read_bytes())
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if not (isinstance(exc, ModuleNotFoundError) and exc.name == name):  # does not load
            _log.warning("%s runs interpreted: its compiled copy failed to load: %s", source, exc)
            return module
    prefix = compiled_stem_prefix(source.stem)
    if any(source.parent.glob(f"{prefix}*")):
        _log.warning(
            "%s runs interpreted: it changed since it was compiled (pip install -e . "
            "compiles it again)",
            source,
        )
    else:
        _log.warning("%s runs interpreted: it was not compiled (no C compiler or mypyc)", source)
    return module
