"""The embedded broker's principals, so the demo can show an approval (RFC 0006: a record
on `copilot.approvals.NAME` is NAME's because only NAME may write that topic). SASL/SCRAM
users are added to its data directory before it starts (`contextplane users add`, random
passwords), and its authorizer is Kafka's StandardAuthorizer: the demo, its copilot and
its services log in as the super user; the approver, `User:support-lead`, may write its
approvals topic and nothing else."""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from contextplane.services.actions.tools import approvals_topic
from contextplane.services.demo.errors import StepError

ADMIN = "demo-admin"
APPROVER = "User:support-lead"
MECHANISM = "SCRAM-SHA-512"
BROKER_SETTINGS = {
    "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": MECHANISM,
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": f"User:{ADMIN}",
}
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class Login:
    user: str
    password: str

    def client_config(self) -> dict[str, str]:
        """librdkafka's settings to log in as this user."""
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": MECHANISM,
            "sasl.username": self.user,
            "sasl.password": self.password,
        }

    def write_properties(self, path: Path) -> Path:
        """The same as a `--command-config` file (Kafka's names), readable by its owner
        only: the demo's child services log in with it."""
        path.touch(mode=0o600)
        path.write_text(
            f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={MECHANISM}\n"
            f'sasl.jaas.config={_SCRAM_MODULE} required username="{self.user}"'
            f' password="{self.password}";\n'
        )
        return path


def add_users(data_dir: Path, timeout_s: float) -> tuple[Login, Login]:
    """The super user's and the approver's logins, added to `data_dir` (before the broker
    starts on it); StepError naming the user when `users add` fails, TimeoutExpired (the
    command stopped) past `timeout_s`."""
    logins = (
        Login(ADMIN, secrets.token_urlsafe(24)),
        Login(APPROVER.removeprefix("User:"), secrets.token_urlsafe(24)),
    )
    for login in logins:
        args = [sys.executable, "-m", "contextplane.cli.launch", "users", "add", login.user]
        args += ["--data-dir", str(data_dir), "--password-stdin"]
        done = subprocess.run(
            args, input=login.password + "\n", text=True, capture_output=True, timeout=timeout_s
        )
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise StepError(f"adding User:{login.user}: {why}")
    return logins


def grant_approver(admin: AdminClient, timeout_s: float) -> str:
    """WRITE on the approver's approvals topic for the approver alone (the executor checks
    that no one else may write it before it starts); the topic's name."""
    topic = approvals_topic(APPROVER)
    binding = AclBinding(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        APPROVER,
        "*",
        AclOperation.WRITE,
        AclPermissionType.ALLOW,
    )
    try:
        for future in admin.create_acls([binding]).values():
            future.result(timeout_s)
    except KafkaException as exc:
        raise StepError(f"granting {APPROVER} WRITE on {topic}: {exc.args[0].str()}") from None
    return topic
