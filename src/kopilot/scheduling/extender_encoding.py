"""The extender's answers as JSON bytes, from pieces encoded once per node name.

A prioritize answer is one `{"Host": name, "Score": 0..10}` per candidate node, a thousand of
them per call; building a dict for each and encoding the list costs more than the scoring of a
cached pod. The eleven possible entries of a node are encoded the first time its name is seen;
an answer is then those entries picked by score and joined. Likewise the `{"metadata": {"name":
...}}` items of a filter answer with v1.Node objects.
"""

from __future__ import annotations

import operator

import orjson

from kopilot.scheduling import extender_types

MAX_NAMES = 20_000
"""Entries kept before the cache starts afresh (nodes come and go over a long run)."""


class Priorities(dict[str, tuple[bytes, ...]]):
    """Node name -> its encoded entries, one per score 0..MAX_EXTENDER_PRIORITY."""

    def __missing__(self, name: str) -> tuple[bytes, ...]:
        if len(self) >= MAX_NAMES:
            self.clear()
        entries = tuple(
            orjson.dumps({"Host": name, "Score": s})
            for s in range(extender_types.MAX_EXTENDER_PRIORITY + 1)
        )
        self[name] = entries
        return entries

    def encode(self, names: list[str], scores: list[int]) -> bytes:
        """`[{"Host": names[i], "Score": scores[i]}, ...]` as JSON; scores within 0..10."""
        return b"[" + b",".join(map(operator.getitem, map(self.__getitem__, names), scores)) + b"]"


class NodeItems(dict[str, bytes]):
    """Node name -> its encoded `{"metadata": {"name": ...}}` item of a v1.NodeList."""

    def __missing__(self, name: str) -> bytes:
        if len(self) >= MAX_NAMES:
            self.clear()
        item = orjson.dumps({"metadata": {"name": name}})
        self[name] = item
        return item

    def encode(self, names: list[str]) -> bytes:
        """`{"items": [{"metadata": {"name": names[i]}}, ...]}` as JSON."""
        return b'{"items":[' + b",".join(map(self.__getitem__, names)) + b"]}"
