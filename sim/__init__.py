"""A deterministic simulation of the storage engine (see workload.py)."""
