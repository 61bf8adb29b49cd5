"""`contextplane mcp`: the copilot data plane as MCP tools for agent frameworks (RFC 0006
§5, "MCP server as built"): `get_context`, `call_tool` and `trace_decision`, over stdio
or streamable HTTP on the loopback interface, built on the official MCP Python SDK."""
