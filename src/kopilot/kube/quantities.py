"""Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `4e3`) as kopilot's integer units.

The grammar is the API's (`resource.Quantity`): a decimal number, then an optional binary suffix
(Ki Mi Gi Ti Pi Ei), decimal suffix (n u m k M G T P E) or exponent (`e3`, `E-2`).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from kopilot.model import errors

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse(text: str, where: str = "quantity") -> Decimal:
    """The quantity's value in base units (cores, bytes, devices)."""
    m = _QUANTITY.match(str(text).strip())
    if not m:
        raise errors.InvalidInputError(f"{where}: {text!r} is not a Kubernetes quantity")
    number, suffix = m.group(1), m.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation as e:
        raise errors.InvalidInputError(f"{where}: {text!r} is not a Kubernetes quantity") from e
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        exponent = int(suffix[1:])
        if abs(exponent) > 30:  # 10**999999999 alone would overflow the decimal context
            raise errors.InvalidInputError(f"{where}: {text!r} is out of kopilot's range")
        return value * (Decimal(10) ** exponent)
    return value * _DECIMAL[suffix]


MAX_UNITS = 2**40
"""The largest amount held in one integer (millicores, MiB, devices); past it, int64 arrays of
the state would overflow, so such a quantity is refused where it is read."""


def _bounded(amount: int, text: str, where: str) -> int:
    if abs(amount) > MAX_UNITS:
        raise errors.InvalidInputError(
            f"{where}: {text!r} is over kopilot's limit ({MAX_UNITS} in its units); is it a typo?"
        )
    return amount


def cpu_milli(text: str, where: str = "cpu") -> int:
    """CPU in millicores, rounded up (the API rounds sub-milli requests up too)."""
    return _bounded(math.ceil(_finite(parse(text, where), text, where) * 1000), text, where)


def memory_mib(text: str, where: str = "memory") -> int:
    """Memory in MiB, rounded up."""
    return _bounded(math.ceil(_finite(parse(text, where), text, where) / 2**20), text, where)


def count(text: str, where: str = "count") -> int:
    """A whole count (GPUs, MIG slices, pods)."""
    value = _finite(parse(text, where), text, where)
    if value != value.to_integral_value():
        raise errors.InvalidInputError(f"{where}: {text!r} must be a whole number")
    return _bounded(int(value), text, where)


def _finite(value: Decimal, text: str, where: str) -> Decimal:
    # `1e999999999` parses to a Decimal whose scaling alone takes seconds: refuse it by size
    if not value.is_finite() or value.adjusted() > 30:
        raise errors.InvalidInputError(f"{where}: {text!r} is over kopilot's limit")
    return value
