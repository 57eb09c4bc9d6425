"""Bearer tokens of the admin API: made once, stored hashed, each with a role.

A token is ``ocs_`` + 43 URL-safe characters (32 random bytes from
:mod:`secrets`). Only its SHA-256 is stored: a token has 256 bits of entropy,
so a fast hash is enough (nobody can search that space; password hashing's
deliberate slowness protects low-entropy secrets), and a lookup is one
dictionary probe by the hash of what the client sent.

Sources, merged (a name may appear once): the tokens file (YAML, a list of
``{name, role, sha256}``; ``ocs admin token add NAME --role ROLE`` appends
to it, mode 0600, and prints the token once) and ``admin.tokens`` inline in
the configuration (``OCS_ADMIN__TOKENS`` in a container). The file is read
again when it changes (its mtime and size), so a new token works without a
restart.

Roles are ordered: ``read`` < ``operator`` < ``admin`` (a role grants the ones
below it).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ocs.admin.config import Role, TokenEntry

PREFIX = "ocs_"
RANK: dict[str, int] = {"read": 0, "operator": 1, "admin": 2}


class TokenFileError(ValueError):
    """The tokens file cannot be read or has the wrong shape (the message says where)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token belongs to."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def actor_name(self) -> str:
        return f"token:{self.name}"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_file(path: Path) -> list[TokenEntry]:
    """The entries of a tokens file (none when it does not exist)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TokenFileError(f"{path}: cannot read the tokens file: {exc}") from None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise TokenFileError(f"{path}: expected a list of {{name, role, sha256}}")
    out = []
    for n, item in enumerate(raw):
        try:
            out.append(TokenEntry.model_validate(item))
        except ValueError as exc:
            first = str(exc).splitlines()
            raise TokenFileError(f"{path}: entry {n}: {' '.join(first[:3])}") from None
    return out


def write_file(path: Path, entries: Sequence[TokenEntry]) -> None:
    """Replace the tokens file atomically (mode 0600: hashes, yet nobody else's business)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = yaml.safe_dump([e.model_dump() for e in entries], sort_keys=False)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def add_token(path: Path, name: str, role: Role) -> str:
    """A new token for ``name`` with ``role``, its hash appended to the file; the token."""
    entries = read_file(path)
    if any(e.name == name for e in entries):
        raise TokenFileError(f"{path}: a token named {name!r} exists (remove it first)")
    token = new_token()
    entries.append(TokenEntry(name=name, role=role, sha256=digest(token)))
    write_file(path, entries)
    return token


def remove_token(path: Path, name: str) -> bool:
    entries = read_file(path)
    kept = [e for e in entries if e.name != name]
    if len(kept) == len(entries):
        return False
    write_file(path, kept)
    return True


class TokenStore:
    """Resolve a presented token to its principal (file re-read when it changes)."""

    def __init__(self, inline: Sequence[TokenEntry], path: Path | None) -> None:
        self._inline = list(inline)
        self._path = path
        self._seen: Any = None
        self._by_hash: dict[str, Principal] = {}
        self.error: str | None = None
        self.reload()

    def reload(self) -> None:
        """Read the file again if it changed; a broken file keeps the last good set."""
        stamp = self._stamp()
        if stamp == self._seen and self._by_hash:
            return
        self._seen = stamp
        try:
            entries = [*self._inline, *(read_file(self._path) if self._path else [])]
        except TokenFileError as exc:
            self.error = str(exc)
            return
        self.error = None
        self._by_hash = {e.sha256: Principal(e.name, e.role) for e in entries}

    def _stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def lookup(self, token: str) -> Principal | None:
        self.reload()
        return self._by_hash.get(digest(token))

    def __len__(self) -> int:
        return len(self._by_hash)
