"""CRC-32C (Castagnoli), the checksum of record batches and WAL entries.

The `crc32c` package's native function, loaded without running the package's
`__init__`, which imports `importlib.metadata` (and with it email, zipfile and csv:
15–30 ms of every broker start) only to set `__version__`. Where the extension is not
where the package keeps it, the package is imported as usual.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from typing import TYPE_CHECKING

_EXTENSION = "crc32c._crc32c"


def _native_module() -> object:
    loaded = sys.modules.get(_EXTENSION)
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("crc32c")  # found, not run
    locations = list(package.submodule_search_locations or []) if package else []
    spec = importlib.machinery.PathFinder.find_spec(_EXTENSION, locations)
    if spec is None or spec.loader is None:
        import crc32c

        return crc32c
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[_EXTENSION] = module  # the package, if imported later, uses this one
    return module


if TYPE_CHECKING:
    from crc32c import crc32c
else:
    crc32c = _native_module().crc32c
