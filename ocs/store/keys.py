"""Redis key layout, ready for Redis Cluster.

Accounts are spread over ``P`` partitions (``ocs:meta:partitions``, fixed at
install, default 16). Every key of one account, its sessions and the
charged-record stream it writes to share the partition's hash tag ``{pNN}``, so
every balance script touches one Cluster slot and can append its record to the
stream in the same call (DESIGN.md "Data flow" 3). The exporter reads the
``P`` record streams.

Indexes that must be found without knowing the account (identity -> account,
session -> account, supervision deadlines, owner -> sessions) live under their
own tags and are maintained beside the scripts in the same pipeline: they are
hints, and the scripts check the authoritative state in the account's slot.
"""

from __future__ import annotations

import zlib

PREFIX = "ocs"
META_PARTITIONS = f"{PREFIX}:meta:partitions"
DEFAULT_PARTITIONS = 16
SUPERVISION_SHARDS = 16


def partition_of(account_id: str, partitions: int) -> int:
    """Stable partition of an account (CRC-32 of its id, modulo ``partitions``)."""
    return zlib.crc32(account_id.encode()) % partitions


def tag(partition: int) -> str:
    return f"{{p{partition:02d}}}"


def records_stream(partition: int) -> str:
    """Charged-session records of one partition (XADD by the closing scripts)."""
    return f"{PREFIX}:{tag(partition)}:records"


def dead_letter_stream(partition: int) -> str:
    return f"{PREFIX}:{tag(partition)}:records:dead"


def notifications_stream(partition: int) -> str:
    return f"{PREFIX}:{tag(partition)}:notifications"


def audit_stream(partition: int) -> str:
    """Operator changes of one partition's accounts (XADD by the account scripts, ocs/audit.py)."""
    return f"{PREFIX}:{tag(partition)}:audit"


def audit_dead_letter_stream(partition: int) -> str:
    return f"{PREFIX}:{tag(partition)}:audit:dead"


class AccountKeys:
    """All keys of one account, under its partition's hash tag."""

    __slots__ = (
        "account",
        "audit",
        "base",
        "events",
        "ids",
        "notifications",
        "partition",
        "records",
        "sessions",
    )

    def __init__(self, account_id: str, partitions: int) -> None:
        self.partition = partition_of(account_id, partitions)
        self.base = f"{PREFIX}:{tag(self.partition)}:a:{account_id}"
        # hash: status, currency, plan, created... and the buckets (ocs/store/layout.py)
        self.account = self.base
        self.ids = f"{self.base}:ids"  # set of identity keys
        self.sessions = f"{self.base}:sessions"  # set of open session ids
        self.events = f"{self.base}:ev"  # hash: event id -> stored answer
        self.records = records_stream(self.partition)  # the partition's record stream
        self.notifications = notifications_stream(self.partition)
        self.audit = audit_stream(self.partition)

    def ref(self, reference: str) -> str:
        """The reply of an idempotent administration call (--ref, Idempotency-Key)."""
        return f"{self.base}:ref:{reference}"

    def session(self, session_id: str) -> str:
        """hash: one session's state and its last answers (ocs/store/layout.py)."""
        return f"{self.base}:s:{session_id}"

    def script_keys(self, session_id: str) -> tuple[str, ...]:
        """KEYS of the session scripts, in their order (ocs/store/lua/session_common.lua)."""
        return (
            self.account,
            self.ids,
            self.session(session_id),
            self.sessions,
            self.records,
            self.notifications,
        )


def identity_index(identity_key: str) -> str:
    """identity (``e164:336...``) -> account id."""
    return f"{PREFIX}:{{id:{identity_key}}}"


def session_index(session_id: str) -> str:
    """session id -> account id (for updates that name no subscriber)."""
    return f"{PREFIX}:{{sx:{session_id}}}"


def owner_index(owner: str) -> str:
    """owner (a Diameter peer, a NAS) -> set of "account\\x00session" of live sessions."""
    return f"{PREFIX}:{{ow:{owner}}}"


def supervision_shard_key(index: int) -> str:
    """ZSET of "account NUL session" scored by supervision deadline (unix s)."""
    return f"{PREFIX}:{{sup:{index:02d}}}"


def supervision_shard(account_id: str) -> str:
    """The supervision shard of an account's sessions."""
    return supervision_shard_key(zlib.crc32(account_id.encode()) % SUPERVISION_SHARDS)


ACCOUNTS_INDEX = f"{PREFIX}:{{idx}}:accounts"  # set of account ids (for `ocs account list`)
