"""Policy-gated, exactly-once tool calls through a ledger topic (RFC 0006 §2)."""
