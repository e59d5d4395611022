"""kopilot's error hierarchy.

Expected outcomes (a pod that does not fit, an action the governor refuses) are values, not
exceptions. Exceptions are for faults: bad input, a world that cannot be reached, a bug.
"""

from __future__ import annotations


class KopilotError(Exception):
    """Base of every error kopilot raises on purpose."""


class PermanentError(KopilotError):
    """A fault that retrying will not fix (bad input, a schema violation, a refused permission)."""


class TemporaryError(KopilotError):
    """A fault that may go away: the caller may retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidInputError(PermanentError):
    """User input (a trace, a scenario, a policy file, an HTTP body) is malformed.

    The message names where (file, line, field) and what is wrong, so a person can fix it.
    """


class InvalidLayoutError(PermanentError):
    """A MIG layout that the GPU's hardware cannot hold."""
