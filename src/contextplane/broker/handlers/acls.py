"""CreateAcls, DescribeAcls, DeleteAcls (the pipeline has checked ALTER / DESCRIBE on the
cluster). With no authorizer configured each answers SECURITY_DISABLED, as Kafka does."""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import AclBinding, AclFilter, InvalidAcl

_NO_AUTHORIZER = "No Authorizer is configured."


def _describe(binding: AclBinding) -> str:
    return (
        f"{binding.permission.name} {binding.principal} {binding.operation.name}"
        f" from {binding.host} on {binding.resource_type.name}"
        f" {binding.pattern_type.name}:{binding.name}"
    )


async def create_acls(ctx: RequestContext, request: Any) -> Reply:
    admin = ctx.services.acls
    if admin is None:
        results = [
            {"error_code": ErrorCode.security_disabled, "error_message": _NO_AUTHORIZER}
            for _ in request.creations
        ]
        return ctx.reply(throttle_time=ctx.throttle_ms, results=results)
    outcomes: list[tuple[AclBinding, dict[str, Any]]] = []
    valid: list[AclBinding] = []
    for creation in request.creations:
        binding = AclBinding.from_wire(
            creation.resource_type,
            creation.resource_name,
            creation.resource_pattern_type,
            creation.principal,
            creation.host,
            creation.operation,
            creation.permission_type,
        )
        entry: dict[str, Any] = {"error_code": ErrorCode.none, "error_message": None}
        try:
            binding.validate()
            valid.append(binding)
        except InvalidAcl as exc:
            entry.update(error_code=exc.code, error_message=exc.message)
        outcomes.append((binding, entry))
    await admin.create(valid)
    for binding, entry in outcomes:
        ctx.audit.record(ctx, "CreateAcls", "acl", _describe(binding), entry["error_code"])
    return ctx.reply(throttle_time=ctx.throttle_ms, results=[entry for _, entry in outcomes])


async def describe_acls(ctx: RequestContext, request: Any) -> Reply:
    admin = ctx.services.acls
    if admin is None:
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.security_disabled,
            error_message=_NO_AUTHORIZER,
            resources=[],
        )
    acl_filter = AclFilter.from_wire(
        request.resource_type_filter,
        request.resource_name_filter,
        request.pattern_type_filter,
        request.principal_filter,
        request.host_filter,
        request.operation,
        request.permission_type,
    )
    problem = acl_filter.unknown_element()
    if problem is not None:
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.invalid_request,
            error_message=problem,
            resources=[],
        )
    grouped: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
    for binding in admin.describe(acl_filter):
        key = (binding.resource_type, binding.name, binding.pattern_type)
        grouped.setdefault(key, []).append(
            {
                "principal": binding.principal,
                "host": binding.host,
                "operation": binding.operation,
                "permission_type": binding.permission,
            }
        )
    resources = [
        {"resource_type": t, "resource_name": n, "pattern_type": p, "acls": acls}
        for (t, n, p), acls in grouped.items()
    ]
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        error_message=None,
        resources=resources,
    )


async def delete_acls(ctx: RequestContext, request: Any) -> Reply:
    admin = ctx.services.acls
    if admin is None:
        results = [
            {
                "error_code": ErrorCode.security_disabled,
                "error_message": _NO_AUTHORIZER,
                "matching_acls": [],
            }
            for _ in request.filters
        ]
        return ctx.reply(throttle_time=ctx.throttle_ms, filter_results=results)
    filters = [
        AclFilter.from_wire(
            f.resource_type_filter,
            f.resource_name_filter,
            f.pattern_type_filter,
            f.principal_filter,
            f.host_filter,
            f.operation,
            f.permission_type,
        )
        for f in request.filters
    ]
    problems = [f.unknown_element() for f in filters]
    deleted = await admin.delete([f for f, p in zip(filters, problems, strict=True) if p is None])
    results = []
    for problem in problems:
        if problem is not None:
            results.append(
                {
                    "error_code": ErrorCode.invalid_request,
                    "error_message": problem,
                    "matching_acls": [],
                }
            )
            continue
        matched = deleted.pop(0)
        for binding in matched:
            ctx.audit.record(ctx, "DeleteAcls", "acl", _describe(binding))
        results.append(
            {
                "error_code": ErrorCode.none,
                "error_message": None,
                "matching_acls": [
                    {
                        "error_code": ErrorCode.none,
                        "error_message": None,
                        "resource_type": b.resource_type,
                        "resource_name": b.name,
                        "pattern_type": b.pattern_type,
                        "principal": b.principal,
                        "host": b.host,
                        "operation": b.operation,
                        "permission_type": b.permission,
                    }
                    for b in matched
                ],
            }
        )
    return ctx.reply(throttle_time=ctx.throttle_ms, filter_results=results)
