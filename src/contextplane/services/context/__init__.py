"""The context service: entity views folded from source topics, served with their
freshness and read fences (RFC 0006 §1)."""
