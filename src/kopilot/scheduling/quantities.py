"""Kubernetes resource quantities (`500m`, `2`, `4Gi`, `1e3`) as kopilot's integers."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from kopilot.model import errors

_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_PATTERN = re.compile(r"^([+]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def parse(value: str | int | float, *, field: str) -> Decimal:
    """A quantity as an exact decimal; raise InvalidInputError naming `field` if malformed."""
    if isinstance(value, bool):
        raise errors.InvalidInputError(f"{field}: expected a quantity, got a boolean")
    if isinstance(value, int | float):
        number = Decimal(str(value))
    else:
        match = _PATTERN.match(value.strip())
        if not match:
            raise errors.InvalidInputError(
                f"{field}: {value!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)"
            )
        try:
            number = Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]
        except InvalidOperation:
            raise errors.InvalidInputError(f"{field}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise errors.InvalidInputError(f"{field}: {value!r} must be a non-negative number")
    if number > Decimal(10) ** 24:
        raise errors.InvalidInputError(f"{field}: {value!r} is implausibly large")
    return number


def cpu_milli(value: str | int | float, *, field: str = "cpu") -> int:
    return int((parse(value, field=field) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def memory_mib(value: str | int | float, *, field: str = "memory") -> int:
    return int((parse(value, field=field) / (2**20)).to_integral_value(rounding="ROUND_CEILING"))


def count(value: str | int | float, *, field: str) -> int:
    number = parse(value, field=field)
    if number != number.to_integral_value():
        raise errors.InvalidInputError(f"{field}: {value!r} must be a whole number")
    return int(number)
