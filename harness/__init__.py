"""Test harnesses that start real reference software (Apache Kafka, a Java client, kcat).

Everything downloaded or built lives in a cache outside the repository
(``~/.cache/contextplane`` or ``$CONTEXTPLANE_CACHE``), never in the work tree.
"""
