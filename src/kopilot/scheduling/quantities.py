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
    shown = _shown(value)
    if isinstance(value, int) and value.bit_length() > 128:
        raise errors.InvalidInputError(f"{field}: {shown} is implausibly large")
    if isinstance(value, int | float):
        number = Decimal(str(value))
    else:
        match = _PATTERN.match(value.strip()) if len(value) <= _MAX_TEXT else None
        if not match:
            raise errors.InvalidInputError(
                f"{field}: {shown} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)"
            )
        try:
            number = Decimal(match.group(1))
            if number.is_finite() and abs(number.adjusted()) > 30:
                # 1e999999999 times a suffix overflows the decimal context: out of range
                raise errors.InvalidInputError(f"{field}: {shown} is out of kopilot's range")
            number *= _SUFFIX[match.group(2) or ""]
        except (InvalidOperation, ArithmeticError):
            raise errors.InvalidInputError(f"{field}: {shown} is not a number") from None
    if not number.is_finite() or number < 0:
        raise errors.InvalidInputError(f"{field}: {shown} must be a non-negative number")
    if number > Decimal(10) ** 24:
        raise errors.InvalidInputError(f"{field}: {shown} is implausibly large")
    return number


_MAX_TEXT = 64
"""A quantity longer than this is not one (the API's own are a few characters)."""


def _shown(value: object) -> str:
    """The value as it goes in an error message: its repr, cut short."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


MAX_UNITS = 2**40
"""The largest amount kopilot holds in one integer (millicores, MiB, devices): 1.1e9 cores or
1 EiB. The state sums and multiplies these in int64 arrays; a quantity past this (a node with
`1e24` cores) is refused where it is read, so it can never overflow a later request."""


def _bounded(amount: int, value: str | int | float, field: str) -> int:
    if amount > MAX_UNITS:
        raise errors.InvalidInputError(
            f"{field}: {_shown(value)} is over kopilot's limit ({MAX_UNITS} in its units); "
            "is it a typo?"
        )
    return amount


def cpu_milli(value: str | int | float, *, field: str = "cpu") -> int:
    milli = int((parse(value, field=field) * 1000).to_integral_value(rounding="ROUND_CEILING"))
    return _bounded(milli, value, field)


def memory_mib(value: str | int | float, *, field: str = "memory") -> int:
    mib = int((parse(value, field=field) / (2**20)).to_integral_value(rounding="ROUND_CEILING"))
    return _bounded(mib, value, field)


def count(value: str | int | float, *, field: str) -> int:
    number = parse(value, field=field)
    if number != number.to_integral_value():
        raise errors.InvalidInputError(f"{field}: {_shown(value)} must be a whole number")
    return _bounded(int(number), value, field)
