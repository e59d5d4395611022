"""The faults the serving runtime raises on purpose, each mapped to one HTTP status.

Bad requests are permanent (4xx: retrying the same body will not help); an overloaded or not yet
ready server is temporary (429/503 with a `Retry-After`); a model that cannot be served is a
permanent fault at start-up.
"""

from __future__ import annotations

from kopilot.model import errors


class BadRequestError(errors.InvalidInputError):
    """The request body cannot be turned into an image tensor.

    `code` is a stable machine-readable name (for example `image_truncated`), `status` the HTTP
    status to answer with, and `hint` tells the caller what to do next.
    """

    def __init__(self, message: str, *, code: str, status: int = 400, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.hint = hint


class OverloadedError(errors.TemporaryError):
    """The batching queue is full: the caller should back off and retry (HTTP 429)."""


class NotReadyError(errors.TemporaryError):
    """The model is still loading or warming up, or the server is shutting down (HTTP 503)."""


class ModelError(errors.PermanentError):
    """The model file cannot be served: not ONNX, not readable, or not an object detector.

    The message names the file and what was expected, so the operator can export the right model.
    """


class InferenceError(errors.KopilotError):
    """ONNX Runtime failed while running a batch: a fault of the server or model, not the client."""
