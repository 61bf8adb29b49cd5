"""What each route of the registry needs (access.py enforces it): READ on the subject to
look anything of it up, WRITE on it to register, delete or configure it, ALTER on the
cluster for the global config and mode (Kafka's operation for cluster-wide changes);
lists and schemas by id answer what the caller may READ; the rest any authenticated
caller may read.

The DEK registry follows the same model: a KEK names a key in a KMS and holds no secret,
so any authenticated caller may read KEKs, and creating, changing or deleting one is
ALTER on the cluster; a DEK is its subject's: READ on the subject to fetch it, WRITE to
register or delete it (the subject of `POST .../deks` is in its body: checked there)."""

from __future__ import annotations

from contextplane.services.schema_registry.access import Need
from contextplane.services.schema_registry.routes.dek import (
    DEK,
    DEKS,
    KEK,
    KEKS,
    VERSION,
    VERSIONS,
)

_S = "/subjects/{subject:segment}"
_V = _S + "/versions/{version:segment}"
_READ = Need("READ", "subject")
_LISTING = Need("READ", "listing")
_ANYONE = Need("READ", "nothing")

# (method, route path) -> need; every route of app.py has one (tests check it).
NEEDS: dict[tuple[str, str], Need] = {
    ("GET", "/"): _ANYONE,
    ("GET", "/metrics"): _ANYONE,  # counts, no names (metrics.py)
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
    ("GET", KEKS): _ANYONE,
    ("POST", KEKS): Need("ALTER", "cluster", "RegisterKek"),
    ("GET", KEK): _ANYONE,
    ("PUT", KEK): Need("ALTER", "cluster", "UpdateKek"),
    ("DELETE", KEK): Need("ALTER", "cluster", "DeleteKek"),
    ("POST", KEK + "/undelete"): Need("ALTER", "cluster", "UndeleteKek"),
    ("GET", DEKS): _LISTING,
    ("POST", DEKS): _ANYONE,  # WRITE on the body's subject, checked by the route
    ("GET", DEK): _READ,
    ("POST", DEK): Need("WRITE", "subject", "RegisterDek"),
    ("DELETE", DEK): Need("WRITE", "subject", "DeleteDek"),
    ("POST", DEK + "/undelete"): Need("WRITE", "subject", "UndeleteDek"),
    ("GET", VERSIONS): _READ,
    ("GET", VERSION): _READ,
    ("DELETE", VERSION): Need("WRITE", "subject", "DeleteDekVersion"),
    ("POST", VERSION + "/undelete"): Need("WRITE", "subject", "UndeleteDekVersion"),
}
