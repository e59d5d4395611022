"""Seeded randomness: every random choice in kopilot comes from a `random.Random` made here."""

from __future__ import annotations

import hashlib
import random


def rng(seed: int, *streams: str) -> random.Random:
    """A generator for `seed`, split by stream names so that two users never share a sequence.

    `rng(7, "coldstart")` and `rng(7, "arrivals")` are independent and each reproducible.
    """
    material = ":".join([str(seed), *streams]).encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))
