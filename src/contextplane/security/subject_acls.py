"""Schema registry subjects as ACLs the broker already stores: a TOPIC ACL whose name is
SUBJECT_PREFIX followed by the subject (literal or prefixed, as topic ACLs are).

The prefix starts with `:`, which no topic name may contain, so no topic ACL a user
writes for topics covers a subject, whether literal or prefixed; only the literal `*`
(every topic) does, and it then covers every subject too. Kafka tools list these ACLs as
topic ACLs; `contextplane acl` shows them as SUBJECT.
"""

from __future__ import annotations

SUBJECT_PREFIX = ":subject:"


def acl_name(subject: str) -> str:
    """The TOPIC ACL resource name that stands for `subject` (or a subject prefix)."""
    return SUBJECT_PREFIX + subject


def subject_of(resource_name: str) -> str | None:
    """The subject a TOPIC ACL's resource name stands for, or None for a topic."""
    if resource_name.startswith(SUBJECT_PREFIX):
        return resource_name[len(SUBJECT_PREFIX) :]
    return None
