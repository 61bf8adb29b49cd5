"""SCRAM-SHA-256 and SCRAM-SHA-512, the server side (RFC 5802, RFC 7677), as Kafka's
ScramSaslServer runs it.

    client-first   n,[a=authzid],n=user,r=cnonce[,ext=value...]
    server-first   r=cnonce+snonce,s=base64(salt),i=iterations
    client-final   c=base64(gs2 header),r=cnonce+snonce[,ext],p=base64(ClientProof)
    server-final   v=base64(ServerSignature)

Only the gs2 header "n" is accepted (no channel binding), as Kafka's message patterns
accept only it. The `tokenauth` extension asks for a delegation token; this broker has
none, so it fails as Kafka fails an unknown token id. A credential is what Kafka's
controller stores: salt, StoredKey, ServerKey and iterations; the proof is checked by
recomputing StoredKey from it, compared in constant time.

Errors: `SaslAuthenticationError` carries a message the client sees (Kafka's
SaslAuthenticationException); `SaslInvalid` does not (Kafka hides a SaslException's
message, which could tell whether a user exists).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from contextplane.logsafe import quoted_bounded
from contextplane.metadata.records import ScramCredentialRecord
from contextplane.security.sasl_errors import SaslAuthenticationError, SaslInvalid


@dataclass(frozen=True, slots=True)
class ScramMechanism:
    name: str
    hash_name: str
    type: int  # Kafka's ScramMechanism type on the wire (DescribeUserScramCredentials)
    min_iterations: int = 4096
    max_iterations: int = 16384


SHA_256 = ScramMechanism("SCRAM-SHA-256", "sha256", 1)
SHA_512 = ScramMechanism("SCRAM-SHA-512", "sha512", 2)
MECHANISMS = {m.name: m for m in (SHA_256, SHA_512)}
BY_TYPE = {m.type: m for m in (SHA_256, SHA_512)}
DEFAULT_ITERATIONS = 4096
SALT_BYTES = 32  # what Kafka's kafka-configs generates (ScramFormatter.secureRandomBytes)

# Kafka's ScramMessages patterns (RFC 5802's ABNF restricted to 7-bit, as Kafka does).
_VALUE_CHAR = r"[\x01-\x2b\x2d-\x3c\x3e-\x7f]"  # any 7-bit char but NUL, ',' and '='
_SASLNAME = rf"(?:{_VALUE_CHAR}|=2C|=3D)+"
_PRINTABLE = r"[\x21-\x2b\x2d-\x7e]+"
_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_EXTENSIONS = rf"(?:,[A-Za-z]+={_VALUE_CHAR}+)*"
_CLIENT_FIRST = re.compile(
    rf"(?P<gs2>n,(?:a=(?P<authzid>{_SASLNAME}))?,)(?:m={_VALUE_CHAR}+,)?"
    rf"n=(?P<saslname>{_SASLNAME}),r=(?P<nonce>{_PRINTABLE})(?P<extensions>{_EXTENSIONS})"
)
_CLIENT_FINAL = re.compile(
    rf"(?P<without_proof>c=(?P<channel>{_BASE64}),r=(?P<nonce>{_PRINTABLE}){_EXTENSIONS})"
    rf",p=(?P<proof>{_BASE64})"
)
TOKEN_AUTH_EXTENSION = "tokenauth"


def _hmac(mechanism: ScramMechanism, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, mechanism.hash_name).digest()


def _hash(mechanism: ScramMechanism, data: bytes) -> bytes:
    return hashlib.new(mechanism.hash_name, data).digest()


def salted_password(
    mechanism: ScramMechanism, password: str, salt: bytes, iterations: int
) -> bytes:
    """Hi(password, salt, i): PBKDF2 with the mechanism's HMAC (Kafka does not SASLprep)."""
    return hashlib.pbkdf2_hmac(mechanism.hash_name, password.encode(), salt, iterations)


def credential(
    mechanism: ScramMechanism, user: str, salt: bytes, salted: bytes, iterations: int
) -> ScramCredentialRecord:
    """What is stored for a salted password (AlterUserScramCredentials sends it salted)."""
    client_key = _hmac(mechanism, salted, b"Client Key")
    return ScramCredentialRecord(
        user,
        mechanism.name,
        salt,
        _hash(mechanism, client_key),
        _hmac(mechanism, salted, b"Server Key"),
        iterations,
    )


def credential_from_password(
    mechanism: ScramMechanism, user: str, password: str, iterations: int = DEFAULT_ITERATIONS
) -> ScramCredentialRecord:
    salt = secrets.token_bytes(SALT_BYTES)
    return credential(
        mechanism, user, salt, salted_password(mechanism, password, salt, iterations), iterations
    )


def server_nonce() -> str:
    """Kafka's ScramFormatter.secureRandomString: 130 random bits in base 36."""
    value = secrets.randbits(130)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while value:
        value, digit = divmod(value, 36)
        text = digits[digit] + text
    return text or "0"


def _unescape_name(saslname: str) -> str:
    return saslname.replace("=2C", ",").replace("=3D", "=")


def _extensions(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        found[key] = value
    return found


class ScramServer:
    """One SCRAM exchange: two client messages, two answers."""

    def __init__(
        self,
        mechanism: ScramMechanism,
        lookup: Callable[[str, str], ScramCredentialRecord | None],
        nonce: Callable[[], str] = server_nonce,
    ) -> None:
        self.mechanism = mechanism
        self._lookup = lookup
        self._nonce = nonce
        self._credential: ScramCredentialRecord | None = None
        self._first_bare = ""
        self._server_first = ""
        self._gs2 = ""
        self.username: str | None = None
        self._attempted = ""  # the user name the client gave, as logs quote it
        self.complete = False
        self.credential_expires_ms: int | None = None  # the password does not expire

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslInvalid("SCRAM exchange already complete")
        try:
            if self._credential is None:
                return self._client_first(token)
            return self._client_final(token)
        except SaslInvalid as exc:
            # The user name the client gave is in what is logged and audited, bounded
            # and escaped (a SaslInvalid's text is never sent to the client).
            if self._attempted:
                raise SaslInvalid(f"{exc} (user {self._attempted})") from None
            raise

    def _client_first(self, token: bytes) -> bytes:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslInvalid("Invalid SCRAM client first message format") from None
        match = _CLIENT_FIRST.fullmatch(text)
        if match is None:
            raise SaslInvalid("Invalid SCRAM client first message format")
        if TOKEN_AUTH_EXTENSION in _extensions(match["extensions"]):
            # A delegation token id: this broker issues no delegation tokens.
            raise SaslInvalid("Token Authentication failed: Invalid tokenId")
        user = _unescape_name(match["saslname"])
        found = self._lookup(user, self.mechanism.name)
        self._attempted = quoted_bounded(user)
        if found is None:
            raise SaslInvalid("Authentication failed: Invalid user credentials")
        authzid = match["authzid"]
        if authzid and _unescape_name(authzid) != user:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is "
                "different from username",
                reason=f"Authentication failed: user {self._attempted} requested the "
                f"authorization id {quoted_bounded(_unescape_name(authzid))}",
            )
        if found.iterations < self.mechanism.min_iterations:
            raise SaslInvalid(
                f"Iterations {found.iterations} is less than the minimum "
                f"{self.mechanism.min_iterations} for {self.mechanism.name}"
            )
        self._credential = found
        self._gs2 = match["gs2"]
        self._first_bare = text[len(self._gs2) :]
        salt = base64.b64encode(found.salt).decode()
        self._server_first = f"r={match['nonce']}{self._nonce()},s={salt},i={found.iterations}"
        self.username = user
        return self._server_first.encode()

    def _client_final(self, token: bytes) -> bytes:
        assert self._credential is not None
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslInvalid("Invalid SCRAM client final message format") from None
        match = _CLIENT_FINAL.fullmatch(text)
        if match is None:
            raise SaslInvalid("Invalid SCRAM client final message format")
        nonce = self._server_first.split(",", 1)[0][2:]
        if match["nonce"] != nonce:
            raise SaslInvalid("Invalid client nonce in the final client message.")
        if match["channel"] != base64.b64encode(self._gs2.encode()).decode():
            raise SaslInvalid("Invalid channel binding in the final client message.")
        mechanism = self.mechanism
        auth_message = f"{self._first_bare},{self._server_first},{match['without_proof']}".encode()
        try:
            proof = base64.b64decode(match["proof"], validate=True)
        except binascii.Error:
            raise SaslInvalid("Invalid client proof") from None
        signature = _hmac(mechanism, self._credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise SaslInvalid("Invalid client credentials")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(_hash(mechanism, client_key), self._credential.stored_key):
            raise SaslInvalid("Invalid client credentials")
        server_signature = _hmac(mechanism, self._credential.server_key, auth_message)
        self._credential = None  # Kafka's clearCredentials
        self.complete = True
        return b"v=" + base64.b64encode(server_signature)
