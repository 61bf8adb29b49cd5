"""Mutual TLS authentications, as the audit records them: which failed handshakes were
a refused client certificate (an authentication failure), and the reason each names.

A handshake that failed for another reason (plaintext on a TLS port, a client that
went away, a timeout) authenticated no one and is only logged by the listener."""

from __future__ import annotations

import ssl

# OpenSSL's reasons for a handshake refused because of the client's certificate.
_NO_CERTIFICATE = "PEER_DID_NOT_RETURN_A_CERTIFICATE"
_REFUSED = ("CERTIFICATE_VERIFY_FAILED", "TLSV1_ALERT_UNKNOWN_CA", "NO_CERTIFICATE_RETURNED")


def certificate_refusal(exc: BaseException) -> str | None:
    """Why a failed handshake refused the client's certificate, or None when the
    failure was not about a certificate."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate refused: {exc.verify_message or exc.reason}"
    if not isinstance(exc, ssl.SSLError):
        return None
    reason = str(exc.reason or "")
    if reason == _NO_CERTIFICATE:
        return "no client certificate (ssl.client.auth=required)"
    if reason in _REFUSED:
        return f"client certificate refused: {reason}"
    return None
