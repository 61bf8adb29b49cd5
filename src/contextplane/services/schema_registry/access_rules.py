"""What each route of the registry needs (access.py enforces it): READ on the subject to
look anything of it up, WRITE on it to register, delete or configure it, ALTER on the
cluster for the global config and mode (Kafka's operation for cluster-wide changes);
lists and schemas by id answer what the caller may READ; the rest any authenticated
caller may read."""

from __future__ import annotations

from contextplane.services.schema_registry.access import Need

_S = "/subjects/{subject:segment}"
_V = _S + "/versions/{version:segment}"
_READ = Need("READ", "subject")
_LISTING = Need("READ", "listing")
_ANYONE = Need("READ", "nothing")

# (method, route path) -> need; every route of app.py has one (tests check it).
NEEDS: dict[tuple[str, str], Need] = {
    ("GET", "/"): _ANYONE,
    ("GET", "/subjects"): _LISTING,
    ("POST", _S): _READ,
    ("DELETE", _S): Need("WRITE", "subject", "DeleteSubject"),
    ("GET", _S + "/metadata"): _READ,
    ("GET", _S + "/versions"): _READ,
    ("POST", _S + "/versions"): Need("WRITE", "subject", "RegisterSchema"),
    ("GET", _V): _READ,
    ("DELETE", _V): Need("WRITE", "subject", "DeleteSchemaVersion"),
    ("GET", _V + "/schema"): _READ,
    ("GET", _V + "/referencedby"): _READ,
    ("GET", "/contexts"): _ANYONE,
    ("GET", "/schemas"): _LISTING,
    ("GET", "/schemas/types"): _ANYONE,
    ("GET", "/schemas/ids/{schema_id:segment}"): _LISTING,
    ("GET", "/schemas/ids/{schema_id:segment}/schema"): _LISTING,
    ("GET", "/schemas/ids/{schema_id:segment}/versions"): _LISTING,
    ("GET", "/schemas/ids/{schema_id:segment}/subjects"): _LISTING,
    ("GET", "/config"): _ANYONE,
    ("PUT", "/config"): Need("ALTER", "cluster", "UpdateGlobalConfig"),
    ("GET", "/config/{subject:segment}"): _READ,
    ("PUT", "/config/{subject:segment}"): Need("WRITE", "subject", "UpdateSubjectConfig"),
    ("DELETE", "/config/{subject:segment}"): Need("WRITE", "subject", "DeleteSubjectConfig"),
    ("GET", "/mode"): _ANYONE,
    ("PUT", "/mode"): Need("ALTER", "cluster", "UpdateGlobalMode"),
    ("GET", "/mode/{subject:segment}"): _READ,
    ("PUT", "/mode/{subject:segment}"): Need("WRITE", "subject", "UpdateSubjectMode"),
    ("DELETE", "/mode/{subject:segment}"): Need("WRITE", "subject", "DeleteSubjectMode"),
    ("POST", "/compatibility/subjects/{subject:segment}/versions/{version:segment}"): _READ,
    ("POST", "/compatibility/subjects/{subject:segment}/versions"): _READ,
}
