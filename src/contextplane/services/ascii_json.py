"""A JSON response written as ASCII, non-ASCII text as `\\u` escapes: what a service
echoes may hold text decoded from JSON's escapes, a lone surrogate too, which has no
UTF-8 form (Starlette's JSONResponse would fail on it with a 500)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class AsciiJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()
