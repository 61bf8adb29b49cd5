# Stand-in for kafka-python's test/__init__.py, which the PyPI sdist does not ship.
# Written by contextplane's conformance harness (conformance/suites/kafka_python).
