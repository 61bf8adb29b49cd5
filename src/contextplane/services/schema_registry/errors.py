"""Confluent Schema Registry's errors: an HTTP status, an error code and a message, the
same words Confluent's registry answers with (clients match on the codes).

* RegistryError
  - 400 / 400    a body that is not a JSON object
  - 401 / 401    no credentials or wrong ones (when authentication is on)
  - 403 / 40301  an operation the principal's ACLs refuse
  - 404 / 404xx  subject, version, schema not found; soft-delete states
  - 408 / 408    a request body trickled in too slowly
  - 409 / 409    incompatible schema
  - 404 / 4047x, 409 / 4097x, 422 / 4227x, 500 / 50070  the DEK registry's keys
  - 413 / 41301  request body too large
  - 422 / 422xx  invalid schema, version, compatibility level, mode, subject, or not
                 permitted
  - 500 / 500xx  the `_schemas` topic could not be written or read in time
"""

from __future__ import annotations


class RegistryError(Exception):
    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


def bad_request(message: str) -> RegistryError:
    return RegistryError(400, 400, message)


def request_timeout(seconds: float) -> RegistryError:
    return RegistryError(408, 408, f"The request body did not arrive within {seconds:.0f} s")


def body_too_large(limit_bytes: int) -> RegistryError:
    return RegistryError(413, 41301, f"Request body is larger than {limit_bytes} bytes")


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found.")


def schema_not_found(schema_id: int | None = None) -> RegistryError:
    if schema_id is None:
        return RegistryError(404, 40403, "Schema not found")
    return RegistryError(404, 40403, f"Schema {schema_id} not found")


def subject_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(
        404,
        40404,
        f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently",
    )


def subject_not_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(
        404,
        40405,
        f"Subject '{subject}' was not deleted first before being permanently deleted",
    )


def version_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(
        404,
        40406,
        f"Subject '{subject}' Version {version} was soft deleted. "
        "Set permanent=true to delete permanently",
    )


def version_not_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(
        404,
        40407,
        f"Subject '{subject}' Version {version} was not deleted first before being "
        "permanently deleted",
    )


def subject_compatibility_not_found(subject: str) -> RegistryError:
    return RegistryError(
        404,
        40408,
        f"Subject '{subject}' does not have subject-level compatibility configured",
    )


def subject_mode_not_found(subject: str) -> RegistryError:
    return RegistryError(
        404, 40409, f"Subject '{subject}' does not have subject-level mode configured"
    )


def incompatible(subject: str, details: list[str]) -> RegistryError:
    return RegistryError(
        409,
        409,
        "Schema being registered is incompatible with an earlier schema for subject "
        f'"{subject}", details: [{", ".join(details)}]',
    )


def invalid_schema(reason: str) -> RegistryError:
    return RegistryError(422, 42201, f"Invalid schema: {reason}")


def invalid_version(version: str) -> RegistryError:
    return RegistryError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"',
    )


def invalid_compatibility_level(level: object) -> RegistryError:
    return RegistryError(
        422,
        42203,
        f"Invalid compatibility level. Valid values are none, backward, forward, full, "
        f"backward_transitive, forward_transitive, and full_transitive; got {level!r}",
    )


def invalid_mode(mode: object) -> RegistryError:
    return RegistryError(
        422, 42204, f"Invalid mode. Valid values are READWRITE and READONLY; got {mode!r}"
    )


def operation_not_permitted(message: str) -> RegistryError:
    return RegistryError(422, 42205, message)


def reference_exists(subject: str, version: int) -> RegistryError:
    key = f"{{magic=1,keytype=SCHEMA,subject={subject},version={version}}}"
    return RegistryError(422, 42206, f"One or more references exist to the schema {key}.")


def unprocessable(message: str) -> RegistryError:
    """A field of the body with the wrong type: Jersey's 422 in Confluent."""
    return RegistryError(422, 422, message)


def invalid_subject(subject: str) -> RegistryError:
    return RegistryError(422, 42208, f"The specified subject '{subject}' is not a valid.")


def store_error(reason: str) -> RegistryError:
    return RegistryError(500, 50001, f"Error while storing in the _schemas topic: {reason}")


def store_timeout(reason: str) -> RegistryError:
    return RegistryError(500, 50002, f"Operation timed out: {reason}")


def unauthorized() -> RegistryError:
    """No credentials, or credentials that prove no principal (Confluent's rest-utils)."""
    return RegistryError(401, 401, "Unauthorized")


def too_many_logins() -> RegistryError:
    """A client address with too many credentials being checked at once (address_logins.py);
    Confluent's rate limits answer 429 with the status as the code."""
    return RegistryError(
        429, 429, "Too Many Requests: too many logins in flight from this client address"
    )


def forbidden(operation: str, resource: str, name: str) -> RegistryError:
    """An authenticated principal the ACLs refuse (Confluent's 40301 and words)."""
    return RegistryError(403, 40301, f"User is denied operation {operation} on {resource}: {name}")


# The DEK registry's (dek_registry.py): Confluent's DekRegistryErrors codes and words.


def key_not_found(name: str) -> RegistryError:
    return RegistryError(404, 40470, f"Key '{name}' not found")


def key_not_soft_deleted(name: str) -> RegistryError:
    return RegistryError(
        404, 40471, f"Key '{name}' was not deleted first before being permanently deleted"
    )


def key_soft_deleted(name: str) -> RegistryError:
    return RegistryError(404, 40472, f"Key '{name}' must be undeleted first")


def key_exists(name: str) -> RegistryError:
    return RegistryError(409, 40971, f"Key '{name}' already exists; use a different value")


def too_many_keys(limit: int) -> RegistryError:
    return RegistryError(409, 40972, f"A maximum of {limit} keys already exist")


def invalid_key(field: str, reason: str = "") -> RegistryError:
    """A key's field missing, malformed or out of bounds (Confluent's 42271)."""
    detail = f": {reason}" if reason else ""
    return RegistryError(422, 42271, f"Invalid or missing key info: {field}{detail}")


def key_reference_exists(name: str) -> RegistryError:
    return RegistryError(422, 42272, f"Key '{name}' is still referenced by undeleted DEKs")


def dek_generation(message: str) -> RegistryError:
    return RegistryError(500, 50070, message)
