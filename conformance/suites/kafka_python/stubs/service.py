"""Stand-in for kafka-python's test/service.py (missing from the PyPI sdist).

The conformance harness runs the integration tests only against an external broker
(KAFKA_URI), so only ExternalService is functional; spawning a broker is refused.
Written by contextplane's conformance harness (conformance/suites/kafka_python).
"""


class ExternalService:
    def __init__(self, host, port):
        self.host = host
        self.port = port

    def open(self):
        pass

    def start(self):
        pass

    def stop(self):
        pass

    def close(self):
        pass

    def dump_logs(self):
        pass

    def wait_for(self, pattern, timeout=30):
        return True


class SpawnedService:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("the conformance harness uses an external broker (KAFKA_URI)")
