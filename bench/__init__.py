"""Benchmarks: contextplane against Apache Kafka, Tansu and the machine's own limits.

Run `python -m bench.run [--quick] [--targets ...] [--out DIR]`; see bench/README.md.
"""
