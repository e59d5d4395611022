"""Stable digests of proposed actions: the id a person approves and the digest that binds it.

A request id is short (ten hex digits) so a person can type it; it hashes the action and the time
it was proposed. The action digest is the full SHA-256 of the action's canonical JSON: an approval
carries it, so an approval only ever approves the exact action its request proposed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical(value: object) -> str:
    """The canonical JSON text of a record (sorted keys, no spaces, non-JSON values as text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def action_digest(record: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of an action record (`actions.to_record` output or its JSON read back)."""
    return "sha256:" + hashlib.sha256(canonical(record).encode()).hexdigest()


def request_id(record: Mapping[str, Any], time: float) -> str:
    """The id of the request to approve `record` proposed at `time` (milliseconds, as audited)."""
    body = json.dumps(record, sort_keys=True, default=str) + f"@{time:.3f}"
    return hashlib.sha256(body.encode()).hexdigest()[:10]


def text_digest(text: bytes) -> str:
    """`sha256:<hex>` of a file's bytes (a policy file as it was read)."""
    return "sha256:" + hashlib.sha256(text).hexdigest()
