"""Replay without side effects (RFC 0006 §3): recorded decisions run again through the
copilot function, reads as of the recorded positions, tool calls answered from the
ledger, the new decisions on `copilot.replay.<run>`, and a diff against the originals."""
