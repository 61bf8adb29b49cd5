"""Authorization is decided in one place: the pipeline's authorize stage asks the
authorizer, every route declares what it needs, and handlers only read the verdicts."""

from __future__ import annotations

import re
from pathlib import Path

from contextplane.broker import authorization as authz
from contextplane.broker.routes import ROUTES

SRC = Path(__file__).resolve().parents[2] / "src" / "contextplane"
# ApiVersions and the SASL requests (SaslHandshake, SaslAuthenticate: they come before a
# principal exists) are open to every principal in Kafka. DescribeCluster is open too, but
# declares the quiet decisions of the cluster's authorized operations when asked for them.
OPEN_APIS = {17, 18, 36}


def test_only_the_pipeline_asks_the_authorizer() -> None:
    asking = re.compile(r"\.(authorize|allowed_on_any)\(")
    callers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if asking.search(path.read_text()) and not path.is_relative_to(SRC / "security")
    )
    assert callers == ["broker/pipeline.py"]


def test_every_route_declares_what_it_needs() -> None:
    undeclared = [key for key, _, _, _, needs, _ in ROUTES if needs is authz.nothing]
    assert sorted(undeclared) == sorted(OPEN_APIS)


def test_describe_cluster_refuses_no_one() -> None:
    for include in (False, True):
        request = type("Request", (), {"include_cluster_authorized_operations": include})()
        needs = authz.describe_cluster(None, request)  # type: ignore[arg-type]
        assert needs.gate is None and not needs.resources
        assert bool(needs.quiet) == include
