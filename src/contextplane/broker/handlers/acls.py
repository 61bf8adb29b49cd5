"""CreateAcls, DescribeAcls, DeleteAcls (the pipeline has checked ALTER / DESCRIBE on the
cluster). With no authorizer configured each answers SECURITY_DISABLED, as Kafka does.

A request changes at most ACL_CHANGES_MAX ACLs (Kafka's bound, with Kafka's errors).
Each ACL created or deleted is audited once, whatever the number of filters that matched
it; the loops over many entries give the event loop back as they go, and large
responses are built off the loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.loopshare import LoopShare
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acl_admin import AclChangeRefused
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
        # Kafka leaves a created binding's message at the schema default, "" (not null).
        entry: dict[str, Any] = {"error_code": ErrorCode.none, "error_message": ""}
        try:
            binding.validate()
            valid.append(binding)
        except InvalidAcl as exc:
            entry.update(error_code=exc.code, error_message=exc.message)
        outcomes.append((binding, entry))
    try:
        await admin.create(valid)
    except AclChangeRefused as refused:
        # Kafka answers every binding that reached its controller with the error.
        for _, entry in outcomes:
            if entry["error_code"] == ErrorCode.none:
                entry.update(error_code=refused.code, error_message=refused.message)
        ctx.audit.record(ctx, "CreateAcls", "acl", f"{len(valid)} ACLs", refused.code)
        return ctx.reply(throttle_time=ctx.throttle_ms, results=[e for _, e in outcomes])
    share = LoopShare()
    for binding, entry in outcomes:
        ctx.audit.record(ctx, "CreateAcls", "acl", _describe(binding), entry["error_code"])
        if share.due():
            await asyncio.sleep(0)
    return await ctx.large_reply(
        len(outcomes), throttle_time=ctx.throttle_ms, results=[e for _, e in outcomes]
    )


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
    described = await admin.describe(acl_filter)
    for binding in described:
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
    return await ctx.large_encoded_reply(
        len(described),
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
    try:
        deleted = await admin.delete(
            [f for f, p in zip(filters, problems, strict=True) if p is None]
        )
    except AclChangeRefused as refused:
        # Kafka fails the whole request: every filter gets the error, nothing is removed.
        ctx.audit.record(ctx, "DeleteAcls", "acl", f"{len(filters)} filters", refused.code)
        results = [
            {"error_code": refused.code, "error_message": refused.message, "matching_acls": []}
            for _ in filters
        ]
        return ctx.reply(throttle_time=ctx.throttle_ms, filter_results=results)
    # One entry (and one audit record) per deleted ACL, shared by every filter that
    # matched it: a hundred identical filters do not make a hundred copies.
    entries: dict[AclBinding, dict[str, Any]] = {}
    share = LoopShare()
    for matched in deleted:
        for binding in matched:
            if binding in entries:
                continue
            entries[binding] = _deleted_entry(binding)
            ctx.audit.record(ctx, "DeleteAcls", "acl", _describe(binding))
            if share.due():
                await asyncio.sleep(0)
    results = []
    items = 0
    matches = iter(deleted)
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
        matching = [entries[b] for b in next(matches)]
        items += len(matching)
        results.append(
            {"error_code": ErrorCode.none, "error_message": None, "matching_acls": matching}
        )
    return await ctx.large_encoded_reply(
        items + len(results), throttle_time=ctx.throttle_ms, filter_results=results
    )


def _deleted_entry(binding: AclBinding) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.none,
        "error_message": None,
        "resource_type": binding.resource_type,
        "resource_name": binding.name,
        "pattern_type": binding.pattern_type,
        "principal": binding.principal,
        "host": binding.host,
        "operation": binding.operation,
        "permission_type": binding.permission,
    }
