"""`contextplane demo support-copilot`: the copilot data plane end to end on sample data."""
