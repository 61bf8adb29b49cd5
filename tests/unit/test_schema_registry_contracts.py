"""Data contracts through the registry's REST API over the in-memory store: `metadata` and
`ruleSet` stored, returned and merged as Confluent's registry does (its
`maybeSetMetadataRuleSet`, `Metadata.mergeMetadata`, `RuleSet.mergeRuleSets`,
`ConfigValue.update`, `getLatestWithMetadata`), refused with its codes, and rebuilt from
the `_schemas` records."""

from __future__ import annotations

import json
from typing import Any

from contextplane.services.schema_registry.contracts import CONTRACT_BYTES_MAX
from contextplane.services.schema_registry.records import decode
from contextplane.services.schema_registry.store import MemoryStore
from tests.unit.test_schema_registry_api import REQUIRED_B, V1, V2, Client, error, run, schema

RULE = {"name": "checkAge", "type": "CEL", "kind": "CONDITION", "mode": "WRITE", "expr": "1 < 2"}
# What the registry stores for RULE: Confluent's field order, `disabled` written.
STORED_RULE = {
    "name": "checkAge",
    "kind": "CONDITION",
    "mode": "WRITE",
    "type": "CEL",
    "expr": "1 < 2",
    "disabled": False,
}


def contract(**properties: str) -> dict[str, Any]:
    return {"metadata": {"properties": properties}}


def test_metadata_and_rule_set_are_stored_and_returned_where_confluent_returns_them() -> None:
    metadata = {
        "properties": {"owner": "team-b", "application.version": "1"},
        "tags": {"User.a": ["PII", "PII", "ANON"]},
        "sensitive": ["s2", "s1"],
    }
    stored_metadata = {
        "tags": {"User.a": ["ANON", "PII"]},
        "properties": {"application.version": "1", "owner": "team-b"},
        "sensitive": ["s1", "s2"],
    }
    rule_set = {"domainRules": [RULE], "migrationRules": []}

    async def test(client: Client, store: MemoryStore) -> None:
        body = schema(V1, metadata=metadata, ruleSet=rule_set)
        assert (await client("POST", "/subjects/s/versions", body)).json() == {"id": 1}
        expected = {"metadata": stored_metadata, "ruleSet": {"domainRules": [STORED_RULE]}}
        version = (await client("GET", "/subjects/s/versions/1")).json()
        assert {k: version[k] for k in ("metadata", "ruleSet")} == expected
        by_id = (await client("GET", "/schemas/ids/1")).json()
        assert {k: by_id[k] for k in ("metadata", "ruleSet")} == expected
        every = (await client("GET", "/schemas")).json()
        assert every[0]["metadata"] == stored_metadata
        looked_up = (await client("POST", "/subjects/s", body)).json()
        assert (looked_up["version"], looked_up["ruleSet"]) == (1, expected["ruleSet"])
        # The `_schemas` value carries them as Confluent's SchemaValue does.
        value = decode(store.log[-1][1])
        assert value is not None
        assert (value["metadata"], value["ruleSet"]) == (stored_metadata, expected["ruleSet"])
        # A schema without a contract is answered without the fields.
        await client("POST", "/subjects/t/versions", schema(V2))
        assert "metadata" not in (await client("GET", "/subjects/t/versions/1")).json()

    run(test)


def test_the_same_text_with_another_contract_is_another_id_and_version() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        assert (await client("POST", "/subjects/s/versions", schema(V1))).json() == {"id": 1}
        with_owner = schema(V1, **contract(owner="a"))
        assert (await client("POST", "/subjects/s/versions", with_owner)).json() == {"id": 2}
        written = len(store.log)
        # The same again, and the same without metadata (a registration takes the previous
        # version's): the latest version's id, nothing written.
        assert (await client("POST", "/subjects/s/versions", with_owner)).json() == {"id": 2}
        assert (await client("POST", "/subjects/s/versions", schema(V1))).json() == {"id": 2}
        # Empty metadata is none: version 1's schema.
        none = schema(V1, metadata={})
        assert (await client("POST", "/subjects/s/versions", none)).json() == {"id": 1}
        assert len(store.log) == written
        assert (await client("GET", "/subjects/s/versions")).json() == [1, 2]
        # The id is the schema with its contract in every subject.
        assert (await client("POST", "/subjects/t/versions", with_owner)).json() == {"id": 2}
        rules = schema(V1, ruleSet={"domainRules": [RULE]})
        assert (await client("POST", "/subjects/t/versions", rules)).json() == {"id": 3}

        # Lookup: as given first, then with the contract a registration would give it.
        exact = (await client("POST", "/subjects/s", schema(V1))).json()
        assert (exact["version"], exact["id"]) == (1, 1)
        owned = (await client("POST", "/subjects/s", with_owner)).json()
        assert (owned["version"], owned["id"]) == (2, 2)
        other = schema(V1, **contract(owner="b"))
        assert error(await client("POST", "/subjects/s", other)) == (404, 40403)
        await client("PUT", "/config/s", {"defaultMetadata": {"properties": {"team": "x"}}})
        assert (await client("POST", "/subjects/s/versions", schema(V2))).json() == {"id": 4}
        merged = (await client("GET", "/subjects/s/versions/3")).json()["metadata"]
        assert merged == {"properties": {"owner": "a", "team": "x"}}
        found = (await client("POST", "/subjects/s", schema(V2))).json()
        assert (found["version"], found["id"]) == (3, 4)

    run(test)


def test_latest_with_metadata() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        assert error(await client("GET", "/subjects/s/metadata?key=a&value=1")) == (404, 40401)
        await client("POST", "/subjects/s/versions", schema(V1, **contract(major="1", env="x")))
        await client("POST", "/subjects/s/versions", schema(V2, **contract(major="2", env="x")))
        await client("POST", "/subjects/s/versions", schema(V2, metadata={}))

        async def version(target: str) -> int:
            answer = await client("GET", target)
            assert answer.status == 200, answer.json()
            return int(answer.json()["version"])

        assert await version("/subjects/s/metadata?key=major&value=1") == 1
        assert await version("/subjects/s/metadata?key=env&value=x") == 2
        assert await version("/subjects/s/metadata?key=env&key=major&value=x&value=1") == 1
        # No pairs: the newest version that has metadata at all.
        assert await version("/subjects/s/metadata") == 2
        assert error(await client("GET", "/subjects/s/metadata?key=major&value=3")) == (404, 40403)
        body = (await client("GET", "/subjects/s/metadata?key=major&value=2")).json()
        assert body["metadata"] == {"properties": {"env": "x", "major": "2"}}
        await client("DELETE", "/subjects/s/versions/2")
        assert await version("/subjects/s/metadata?key=env&value=x") == 1
        assert await version("/subjects/s/metadata?key=env&value=x&deleted=true") == 2

    run(test)


def test_defaults_request_and_overrides_merge_as_confluent_merges_them() -> None:
    def rule(name: str, expr: str) -> dict[str, Any]:
        return {"name": name, "type": "CEL", "mode": "WRITE", "expr": expr}

    config = {
        "defaultMetadata": {
            "properties": {"a": "default", "b": "default"},
            "tags": {"User.a": ["PII"], "User.b": ["PII"]},
            "sensitive": ["d"],
        },
        "overrideMetadata": {"properties": {"c": "override"}},
        "defaultRuleSet": {"domainRules": [rule("r1", "default")]},
        "overrideRuleSet": {"domainRules": [rule("r3", "override")]},
    }
    request = {
        "metadata": {
            "properties": {"b": "request", "c": "request"},
            "tags": {"User.b": ["SECRET"]},
            "sensitive": ["r"],
        },
        "ruleSet": {"domainRules": [rule("r1", "request"), rule("r2", "request")]},
    }

    async def test(client: Client, store: MemoryStore) -> None:
        put = await client("PUT", "/config/s", config)
        assert put.status == 200
        assert put.json()["defaultMetadata"]["properties"] == {"a": "default", "b": "default"}
        await client("POST", "/subjects/s/versions", schema(V1, **request))
        stored = (await client("GET", "/subjects/s/versions/1")).json()
        assert stored["metadata"] == {
            "tags": {"User.a": ["PII"], "User.b": ["SECRET"]},
            "properties": {"a": "default", "b": "request", "c": "override"},
            "sensitive": ["d", "r"],
        }
        rules = stored["ruleSet"]["domainRules"]
        assert [(r["name"], r["expr"]) for r in rules] == [
            ("r1", "request"),
            ("r2", "request"),
            ("r3", "override"),
        ]
        # A subject with a config of its own takes no global defaults.
        await client("PUT", "/config", {"defaultMetadata": {"properties": {"g": "1"}}})
        await client("POST", "/subjects/s/versions", schema(V2))
        latest = (await client("GET", "/subjects/s/versions/2")).json()["metadata"]
        assert "g" not in latest["properties"] and latest["properties"]["c"] == "override"
        await client("POST", "/subjects/t/versions", schema(V1))
        assert (await client("GET", "/subjects/t/versions/1")).json()["metadata"] == {
            "properties": {"g": "1"}
        }

    run(test)


def test_config_updates_keep_what_they_do_not_name_and_null_clears() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        defaults = {"properties": {"a": "1"}}
        put = await client(
            "PUT", "/config/s", {"compatibility": "full", "defaultMetadata": defaults}
        )
        assert put.json() == {"compatibility": "FULL", "defaultMetadata": defaults}
        group = await client("PUT", "/config/s", {"compatibilityGroup": "major"})
        assert group.json() == {
            "compatibility": "FULL",
            "compatibilityGroup": "major",
            "defaultMetadata": defaults,
        }
        cleared = await client("PUT", "/config/s", {"defaultMetadata": None})
        assert cleared.json() == {"compatibility": "FULL", "compatibilityGroup": "major"}
        assert (await client("GET", "/config/s")).json() == {
            "compatibilityLevel": "FULL",
            "compatibilityGroup": "major",
        }
        await client("PUT", "/config", {"compatibilityGroup": "global-group"})
        assert (await client("GET", "/config/t?defaultToGlobal=true")).json() == {
            "compatibilityLevel": "BACKWARD",
            "compatibilityGroup": "global-group",
        }
        # A subject config without a level falls back to the global level.
        await client("PUT", "/config/u", {"defaultMetadata": defaults})
        assert (await client("GET", "/config/u")).json() == {"defaultMetadata": defaults}
        assert (await client("GET", "/config/u?defaultToGlobal=true")).json() == {
            "compatibilityLevel": "BACKWARD",
            "compatibilityGroup": "global-group",
            "defaultMetadata": defaults,
        }
        assert (await client("DELETE", "/config/u")).json() == {"defaultMetadata": defaults}
        assert error(await client("GET", "/config/u")) == (404, 40408)

    run(test)


def test_a_compatibility_group_checks_only_versions_of_the_same_group() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("PUT", "/config/s", {"compatibilityGroup": "major"})
        await client("POST", "/subjects/s/versions", schema(V1, **contract(major="1")))
        # REQUIRED_B breaks BACKWARD against V1: refused in V1's group, taken in another.
        same = schema(REQUIRED_B, **contract(major="1"))
        assert error(await client("POST", "/subjects/s/versions", same)) == (409, 409)
        other = schema(REQUIRED_B, **contract(major="2"))
        # The compatibility routes filter by the group of the metadata given.
        for target in (
            "/compatibility/subjects/s/versions",
            "/compatibility/subjects/s/versions/1",
        ):
            assert (await client("POST", target, same)).json() == {"is_compatible": False}
            assert (await client("POST", target, other)).json() == {"is_compatible": True}
        assert (await client("POST", "/subjects/s/versions", other)).json() == {"id": 2}

    run(test)


def test_invalid_contracts_answer_confluents_codes_and_store_nothing() -> None:
    def rules(*found: dict[str, Any], kind: str = "domainRules") -> dict[str, Any]:
        return {"ruleSet": {kind: list(found)}}

    refused = [
        (rules({**RULE, "mode": "UPGRADE"}), 42210),
        (rules({**RULE, "mode": "WRITE"}, kind="migrationRules"), 42210),
        (rules(RULE, RULE), 42210),
        (rules({**RULE, "type": None}), 42210),
        (rules({**RULE, "name": "1abc"}), 42210),
        (rules({**RULE, "name": "a b"}), 42210),
        (rules({**RULE, "name": "a" * 257}), 42210),
        (rules({**RULE, "mode": "WRITE", "onFailure": "ERROR,NONE"}), 42210),
        (rules(*({**RULE, "name": f"r{i}"} for i in range(101))), 42210),
        (rules({**RULE, "kind": "MAYBE"}), 422),
        (rules({**RULE, "params": {"a": {}}}), 422),
        ({"ruleSet": []}, 422),
        ({"metadata": {"tags": "PII"}}, 422),
        ({"metadata": {"properties": {"a": [1]}}}, 422),
        ({"metadata": {"sensitive": "a"}}, 422),
        ({"metadata": {"properties": {str(i): "" for i in range(1001)}}}, 422),
        ({"metadata": {"tags": {"a": [str(i) for i in range(101)]}}}, 422),
        ({"metadata": {"properties": {"big": "x" * CONTRACT_BYTES_MAX}}}, 422),
    ]

    async def test(client: Client, store: MemoryStore) -> None:
        # A scalar where a string belongs is its JSON text, as Jackson coerces it.
        coerced = schema(V1, metadata={"properties": {"n": 1, "b": True}})
        assert (await client("POST", "/subjects/t/versions", coerced)).json() == {"id": 1}
        answer = await client("GET", "/subjects/t/versions/1")
        assert answer.json()["metadata"] == {"properties": {"b": "true", "n": "1"}}
        written = len(store.log)
        for extra, code in refused:
            answer = await client("POST", "/subjects/s/versions", schema(V1, **extra))
            assert (answer.status, answer.json()["error_code"]) == (422, code), extra
        for config in (
            {"defaultRuleSet": {"domainRules": [RULE, RULE]}},
            {"overrideRuleSet": {"encodingRules": [{**RULE, "mode": "UPDOWN"}]}},
            {"defaultMetadata": {"tags": {"a": "b"}}},
            {"compatibilityGroup": 5},
        ):
            answer = await client("PUT", "/config/s", config)
            assert answer.status == 422, config
        assert len(store.log) == written
        # The 42210 message is Confluent's.
        duplicate = await client("POST", "/subjects/s/versions", schema(V1, **rules(RULE, RULE)))
        assert duplicate.json()["message"] == "Found rule with duplicate name 'checkAge'"

    run(test)


def test_a_registry_started_on_the_same_records_has_the_same_contracts() -> None:
    async def write(client: Client, store: MemoryStore) -> None:
        await client("PUT", "/config", {"overrideMetadata": {"properties": {"o": "1"}}})
        await client("PUT", "/config/s", {"compatibilityGroup": "major"})
        body = schema(V1, ruleSet={"domainRules": [RULE]}, **contract(major="1"))
        await client("POST", "/subjects/s/versions", body)

    async def read(client: Client, store: MemoryStore) -> None:
        version = (await client("GET", "/subjects/s/versions/1")).json()
        assert version["metadata"] == {"properties": {"major": "1"}}
        assert version["ruleSet"] == {"domainRules": [STORED_RULE]}
        assert (await client("GET", "/config")).json()["overrideMetadata"] == {
            "properties": {"o": "1"}
        }
        assert (await client("GET", "/config/s")).json() == {"compatibilityGroup": "major"}
        again = schema(V1, ruleSet={"domainRules": [RULE]}, **contract(major="1"))
        assert (await client("POST", "/subjects/s/versions", again)).json() == {"id": 1}
        assert json.loads(version["schema"]) == V1

    store = run(write)
    replayed = MemoryStore()
    replayed.log = list(store.log)
    run(read, replayed)
