"""Parsing a detection request: which bytes are the image, and which thresholds apply.

Three ways to send an image to `POST /v1/detect`:
- the raw bytes as the body, with an `image/*` or `application/octet-stream` content type;
- `multipart/form-data` with the image in a field named `image`;
- `application/json`: `{"image": "<base64>", "conf": 0.25, "iou": 0.45, "max_det": 300}`.
`conf`, `iou` and `max_det` may also be query parameters (a JSON body's values win).
The body is read with a size limit before anything is parsed, so a huge upload is refused early.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any

import pydantic
import starlette.datastructures
import starlette.exceptions
import starlette.requests
from starlette.types import Message

from kopilot.serving import admission, errors

RAW_TYPES = ("image/", "application/octet-stream")
ACCEPTED = "image/* or application/octet-stream (raw bytes), multipart/form-data (field `image`), application/json (base64)"


class DetectOptions(pydantic.BaseModel):
    """Per-request overrides of the server's post-processing defaults."""

    model_config = pydantic.ConfigDict(extra="forbid")

    conf: float | None = pydantic.Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    iou: float | None = pydantic.Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    max_det: int | None = pydantic.Field(default=None, ge=1, le=10_000)


class JsonDetectRequest(DetectOptions):
    """The JSON body: the image as base64 (a `data:image/...;base64,` prefix is accepted)."""

    image: str = pydantic.Field(min_length=1)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImageRequest:
    """A parsed request: the image's encoded bytes and the options it asked for."""

    data: bytes
    options: DetectOptions


def _invalid(error: pydantic.ValidationError, where: str) -> errors.BadRequestError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or where}: {e['msg']}" for e in error.errors()
    )
    return errors.BadRequestError(
        f"invalid {where}: {problems}",
        code="invalid_field",
        hint="conf and iou are numbers in [0, 1], max_det an integer in [1, 10000]",
    )


async def read_limited(
    request: starlette.requests.Request, limit: int, claim: admission.Claim | None = None
) -> bytes:
    """The whole body, refusing (413) one larger than `limit` bytes before reading it all.

    With `claim`, the bytes are reserved on the server's body budget first (a declared
    `Content-Length` whole, before reading; a chunked body chunk by chunk): when it is spent the
    request is refused with `OverloadedError` (429). A client that disconnects raises
    `starlette.requests.ClientDisconnect`.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
        _reserve(claim, int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        _reserve(claim, size)
        chunks.append(chunk)
    return b"".join(chunks)


def _reserve(claim: admission.Claim | None, size: int) -> None:
    if claim is not None and not claim.reserve(size):
        budget = claim.budget
        raise errors.OverloadedError(
            f"the server is holding {budget.held} bytes of other uploads (its limit is "
            f"{budget.limit}); this body does not fit now",
            retry_after=1.0,
        )


def _too_large(size: int, limit: int) -> errors.BadRequestError:
    return errors.BadRequestError(
        f"the body is over {size} bytes; this server accepts at most {limit} bytes",
        code="body_too_large",
        status=413,
        hint="send a smaller (downscaled or recompressed) image",
    )


def _query_options(query: starlette.datastructures.QueryParams) -> dict[str, Any]:
    known = {k: query[k] for k in ("conf", "iou", "max_det") if k in query}
    unknown = sorted(set(query.keys()) - set(known))
    if unknown:
        raise errors.BadRequestError(
            f"unknown query parameter(s): {', '.join(unknown)}",
            code="invalid_field",
            hint="the query parameters are conf, iou and max_det",
        )
    return known


def _b64(text: str) -> bytes:
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise errors.BadRequestError(
            f"the `image` field is not valid base64: {e}",
            code="invalid_base64",
            hint="encode the image file's bytes with standard base64 (RFC 4648)",
        ) from e


async def parse(
    request: starlette.requests.Request,
    *,
    max_body_bytes: int,
    claim: admission.Claim | None = None,
) -> ImageRequest:
    """Turn a detection request into image bytes and options, or raise `BadRequestError`
    (`OverloadedError` when `claim`'s body budget is spent; see `read_limited`)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    query = _query_options(request.query_params)
    if not content_type.startswith(RAW_TYPES) and content_type not in (
        "application/json",
        "multipart/form-data",
    ):
        raise errors.BadRequestError(
            f"unsupported content type {content_type or '(none)'!r}",
            code="unsupported_media_type",
            status=415,
            hint=f"send {ACCEPTED}",
        )
    body = await read_limited(request, max_body_bytes, claim)
    if content_type == "application/json":
        try:
            parsed = JsonDetectRequest.model_validate_json(body)
        except pydantic.ValidationError as e:
            raise _invalid(e, "JSON body") from e
        fields = parsed.model_dump(exclude={"image"}, exclude_none=True)
        options = _options({**query, **fields})
        return ImageRequest(data=_b64(parsed.image), options=options)
    options = _options(query)
    if content_type == "multipart/form-data":
        return ImageRequest(data=await _multipart_image(request, body), options=options)
    return ImageRequest(data=body, options=options)


def _options(values: dict[str, Any]) -> DetectOptions:
    try:
        return DetectOptions.model_validate(values)
    except pydantic.ValidationError as e:
        raise _invalid(e, "query parameters") from e


async def _multipart_image(request: starlette.requests.Request, body: bytes) -> bytes:
    """The `image` field of a multipart body (already read, so the limit held)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    bad = errors.BadRequestError(
        "the multipart body cannot be parsed",
        code="invalid_multipart",
        hint="send multipart/form-data with the image file in a field named `image`",
    )
    replayed = starlette.requests.Request(request.scope, replay)
    try:
        form = await replayed.form(max_files=4, max_fields=16, max_part_size=len(body) + 1)
    except (starlette.exceptions.HTTPException, ValueError, KeyError, IndexError) as e:
        raise bad from e
    try:
        field = form.get("image")
        if field is None:
            raise errors.BadRequestError(
                f"the multipart body has no `image` field (fields: {sorted(form.keys())})",
                code="missing_image",
                hint="put the image file in a form field named `image`",
            )
        if isinstance(field, str):
            raise errors.BadRequestError(
                "the multipart `image` field is text, not a file",
                code="invalid_multipart",
                hint="attach the image as a file part (curl: -F image=@photo.jpg)",
            )
        return await field.read()
    finally:
        await form.close()
