"""The ACL set-up the secured-client tests share: admin creates `orders`, and alice may
read and write it and read as the group `readers`; bob gets nothing."""

from __future__ import annotations

from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)


def grant_alice_orders(admin_config: dict[str, Any]) -> None:
    """As admin (`admin_config`, a confluent-kafka config): create `orders` and grant
    alice READ and WRITE on it and READ on the group `readers`."""
    admin = AdminClient(admin_config)
    admin.poll(0)
    admin.create_topics([NewTopic("orders", 1)])["orders"].result(20)
    allow_alice(
        admin,
        [
            (ResourceType.TOPIC, "orders", AclOperation.READ),
            (ResourceType.TOPIC, "orders", AclOperation.WRITE),
            (ResourceType.GROUP, "readers", AclOperation.READ),
        ],
    )


def allow_alice(admin: AdminClient, grants: list[tuple[Any, str, Any]]) -> None:
    """ALLOW ACLs for User:alice from any host: (resource type, literal name, operation)
    each."""
    acls = [
        AclBinding(
            resource,
            name,
            ResourcePatternType.LITERAL,
            "User:alice",
            "*",
            operation,
            AclPermissionType.ALLOW,
        )
        for resource, name, operation in grants
    ]
    for future in admin.create_acls(acls).values():
        future.result(20)
