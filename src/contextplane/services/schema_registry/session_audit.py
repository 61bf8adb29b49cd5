"""Which successful authentications are audited: HTTP has no sessions, and a client sends
its credentials with every request, so a record per request would be a record per
schema lookup. A session here is a client address and the principal its credentials
proved (not the header's text: one credential has many spellings, the scheme in any
case, any spaces after it, base64 with other unused bits): its first success is audited,
the next ones are not for SESSION_S (the time a registry run alone trusts a checked
password), at most SESSIONS_MAX sessions remembered (the least recently started
forgotten first, then audited again when they return).

So the records are at most one per address and principal per SESSION_S, each needing
credentials the registry accepts, and the memory is SESSIONS_MAX digests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict

from contextplane.clock import SystemClock

SESSION_S = 60.0
SESSIONS_MAX = 10_000


class SessionAudit:
    def __init__(self, session_s: float = SESSION_S, sessions_max: int = SESSIONS_MAX) -> None:
        self._session_ms = int(session_s * 1000)
        self._sessions_max = sessions_max
        self._clock = SystemClock()
        # Keyed by an HMAC under a key of this process: a fixed size per session.
        self._key = os.urandom(32)
        self._expires_ms: OrderedDict[bytes, int] = OrderedDict()

    def is_new(self, host: str, principal: str) -> bool:
        """Does this success start a session (audit it), rather than continue one?"""
        text = f"{host}\0{principal}".encode("utf-8", "surrogateescape")
        digest = hmac.new(self._key, text, hashlib.sha256).digest()
        now_ms = self._clock.monotonic_ms()
        expires_ms = self._expires_ms.get(digest)
        if expires_ms is not None and now_ms < expires_ms:
            return False
        self._expires_ms[digest] = now_ms + self._session_ms
        self._expires_ms.move_to_end(digest)
        while len(self._expires_ms) > self._sessions_max:
            self._expires_ms.popitem(last=False)
        return True
