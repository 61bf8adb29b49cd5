"""Which tests share a pytest-xdist worker (`scripts/test` runs `-n 2 --dist loadfile`).

A test file runs in one worker, so its module fixtures are set up once. The conformance
tests go further: they all run in one worker, one after another, because they build the
client suites into the shared harness cache (`$CONTEXTPLANE_CACHE`: librdkafka's apt
source build, the kafka-python venv, the franz-go test binary, none of them locked) and
prune each other's work directories (`conformance.suites.work_dir`), and the from-empty
test checks the very cache the others build into.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

# Path prefixes (relative to the root, as in node ids) whose tests run in a single worker.
ONE_WORKER = ("tests/conformance/",)


def scope_of(nodeid: str) -> str:
    """The unit of work a node id belongs to: its group's prefix, else its file."""
    path = nodeid.split("::", 1)[0]
    return next((prefix for prefix in ONE_WORKER if path.startswith(prefix)), path)


class FileOrGroupScheduling(LoadFileScheduling):
    """`--dist loadfile`, with the files under each `ONE_WORKER` prefix as one unit."""

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)


def make_scheduler(config: pytest.Config, log: Producer) -> FileOrGroupScheduling:
    return FileOrGroupScheduling(config, log)
