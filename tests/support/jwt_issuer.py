"""A token issuer made at test time: RSA and EC signing keys, their JWKS (as a file and
served over HTTP on 127.0.0.1), and signed JWTs with whatever claims a test needs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://issuer.test"
AUDIENCE = "contextplane"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """Signing keys by key id, and the JWKS of their public halves."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, Any]] = {}  # kid -> (alg, private key)
        self.add_key("rsa-1", "RS256")
        self.add_key("ec-1", "ES256")

    def add_key(self, kid: str, alg: str) -> None:
        key: Any
        if alg.startswith("RS"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        self.keys[kid] = (alg, key)

    def jwks(self, kids: list[str] | None = None) -> dict[str, Any]:
        found = []
        for kid, (alg, key) in self.keys.items():
            if kids is not None and kid not in kids:
                continue
            algorithm = jwt.get_algorithm_by_name(alg)
            public = json.loads(algorithm.to_jwk(key.public_key()))
            found.append({**public, "kid": kid, "use": "sig", "alg": alg})
        return {"keys": found}

    def write_jwks(self, path: Path, kids: list[str] | None = None) -> Path:
        path.write_text(json.dumps(self.jwks(kids)))
        return path

    def token(
        self,
        sub: str = "alice",
        kid: str = "rsa-1",
        lifetime_s: int = 600,
        now: float | None = None,
        **claims: Any,
    ) -> str:
        """A signed JWT for `sub`; `claims` add or replace claims (None removes one)."""
        issued = int(time.time() if now is None else now)
        body: dict[str, Any] = {
            "sub": sub,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + lifetime_s,
            "scope": "kafka",
        }
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        alg, key = self.keys[kid]
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})

    def unsigned_token(self, sub: str = "alice") -> str:
        """`alg: none`, no signature."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
        now = int(time.time())
        claims = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        return f"{header}.{_b64(json.dumps(claims).encode())}."

    def hmac_with_public_key(self, sub: str = "alice") -> str:
        """HS256 keyed with the RSA key's public JWK text: the algorithm-confusion attack."""
        secret = json.dumps(self.jwks(["rsa-1"])["keys"][0]).encode()
        now = int(time.time())
        claims = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"


class JwksServer:
    """Serves a JWKS document over HTTP on 127.0.0.1 and counts the requests."""

    def __init__(self, document: bytes) -> None:
        self.document = document
        self.requests = 0
        # While cleared, requests wait for it (a provider that stalls); set by default.
        self.answering = threading.Event()
        self.answering.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests += 1
                server.answering.wait(30)
                body = server.document
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self.answering.set()
            self._http.shutdown()
            self._http.server_close()
