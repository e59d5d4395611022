"""The HTTP API: a Starlette app around one detector and its dynamic batcher.

Start-up does not block listening: the model loads and warms up in the background, `/healthz`
answers at once and `/readyz` turns 200 only once a batch of every size the batcher may form
has run. On shutdown (uvicorn has stopped accepting and finished in-flight requests) the batcher
serves what is queued, then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import prometheus_client
import starlette.applications
import starlette.exceptions
import starlette.requests
import starlette.responses
import starlette.routing

from kopilot.serving import (
    admission,
    batching,
    bodies,
    connections,
    decoding,
    detectors,
    errors,
    instruments,
    logs,
    openapi,
    postprocessing,
    settings,
)

Loader = Callable[[settings.ModelSettings], detectors.Detector]


class Phase(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"


@dataclasses.dataclass(slots=True)
class _State:
    phase: Phase = Phase.LOADING
    detector: detectors.Detector | None = None
    batcher: batching.DynamicBatcher | None = None
    failure: str = ""


def _error(status: int, code: str, message: str, hint: str = "", **headers: str) -> Any:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if hint:
        body["error"]["hint"] = hint
    return starlette.responses.JSONResponse(body, status_code=status, headers=headers or None)


def _json_answer(status: int, body: Any, *headers: tuple[str, str]) -> connections.Answer:
    return connections.Answer(
        status=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        headers=headers,
    )


def _response(answer: connections.Answer) -> Any:
    return starlette.responses.Response(
        answer.body,
        status_code=answer.status,
        headers={"content-type": answer.content_type, **dict(answer.headers)},
    )


class Service:
    """One model service: its settings, state, metrics and request handlers."""

    def __init__(
        self,
        config: settings.ServeSettings,
        *,
        loader: Loader = detectors.load,
        on_fatal: Callable[[Exception], None] | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.instruments = instruments.Instruments()
        self._loader = loader
        self._on_fatal = on_fatal
        self._timer = timer
        self._state = _State()
        self._log = logs.logger()
        # A burst beyond the queue plus the batch running now is refused on arrival.
        self.admission = admission.Admission(
            config.batching.max_queue_size + config.batching.max_batch_size
        )
        self.body_budget = admission.BodyBudget(config.limits.max_inflight_body_bytes)
        self.decoder = decoding.DecodePool(
            threads=config.preprocess.decode_threads, limits=config.limits
        )
        self._loading: asyncio.Task[None] | None = None

    @property
    def phase(self) -> Phase:
        return self._state.phase

    @property
    def failure(self) -> str:
        """Why loading failed ("" unless the phase is FAILED)."""
        return self._state.failure

    # -- lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: starlette.applications.Starlette) -> AsyncIterator[None]:
        self._loading = asyncio.get_running_loop().create_task(self._load(), name="model-load")
        try:
            yield
        finally:
            self._state.phase = Phase.STOPPING
            self.instruments.ready.set(0)
            if not self._loading.done():
                self._loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loading
            if self._state.batcher is not None:
                await self._state.batcher.close()
            await asyncio.to_thread(self.decoder.close)
            self._log.info("stopped", extra={"fields": {"event": "stopped"}})

    async def _load(self) -> None:
        model = self.config.model
        self._log.info(
            "loading model", extra={"fields": {"event": "loading", "model": str(model.path)}}
        )
        started = self._timer()
        try:
            detector = await asyncio.to_thread(self._loader, model)
            max_batch = self.config.batching.max_batch_size
            if detector.info.fixed_batch is not None and detector.info.fixed_batch < max_batch:
                self._log.warning(
                    "model has a fixed batch axis; batching limited to it",
                    extra={"fields": {"fixed_batch": detector.info.fixed_batch}},
                )
                max_batch = detector.info.fixed_batch
            await asyncio.to_thread(self._warm_up, detector, max_batch)
        except (errors.ModelError, errors.InferenceError) as e:
            self._state.phase = Phase.FAILED
            self._state.failure = str(e)
            self._log.error(
                "model cannot be served",
                extra={"fields": {"event": "load_failed", "error": str(e)}},
            )
            if self._on_fatal is not None:
                self._on_fatal(e)
            return
        batching_config = dataclasses.replace(self.config.batching, max_batch_size=max_batch)
        batcher = batching.DynamicBatcher(
            detector, config=batching_config, observer=self.instruments, timer=self._timer
        )
        batcher.start()
        self._state.detector, self._state.batcher = detector, batcher
        self._state.phase = Phase.READY
        self.instruments.ready.set(1)
        info = detector.info
        self._log.info(
            "ready",
            extra={
                "fields": {
                    "event": "ready",
                    "model": info.name,
                    "layout": info.layout.value,
                    "classes": len(info.class_names),
                    "input": [info.input_height, info.input_width],
                    "providers": list(info.providers),
                    "max_batch_size": max_batch,
                    "load_s": round(self._timer() - started, 3),
                }
            },
        )

    @staticmethod
    def _warm_up(detector: detectors.Detector, max_batch: int) -> None:
        """Run every batch size the batcher can form once, so no request pays a first-run cost."""
        info = detector.info
        for size in sorted({1, max_batch, *range(2, max_batch)}):
            try:
                detector.run(np.zeros((size, 3, info.input_height, info.input_width), np.float32))
            except errors.InferenceError as e:
                raise errors.ModelError(
                    f"{info.path}: warm-up with a batch of {size} failed ({e}); if the model "
                    "only runs one image at a time, serve it with --max-batch-size 1"
                ) from e

    # -- handlers --------------------------------------------------------------------------

    # The probes' answers are plain functions: the connection guard serves them itself
    # (`fast_paths`), and the ASGI routes below give the same answers (HEAD, tests, tools).

    def health_answer(self) -> connections.Answer:
        return _json_answer(200, {"status": "alive", "phase": self.phase.value})

    def ready_answer(self) -> connections.Answer:
        if self.phase is Phase.READY:
            return _json_answer(200, {"status": "ready"})
        message = {
            Phase.LOADING: "the model is loading and warming up",
            Phase.FAILED: f"the model cannot be served: {self.failure}",
            Phase.STOPPING: "the server is shutting down",
        }[self.phase]
        body = {"error": {"code": f"not_ready_{self.phase.value}", "message": message}}
        return _json_answer(503, body, ("Retry-After", "1"))

    def metrics_answer(self) -> connections.Answer:
        return connections.Answer(
            status=200,
            content_type=prometheus_client.CONTENT_TYPE_LATEST,
            body=self.instruments.exposition(),
        )

    def fast_paths(self) -> connections.FastPaths:
        """The probe paths the connection guard answers without the app."""
        return {
            "/healthz": self.health_answer,
            "/readyz": self.ready_answer,
            "/metrics": self.metrics_answer,
        }

    async def healthz(self, _request: starlette.requests.Request) -> Any:
        return _response(self.health_answer())

    async def readyz(self, _request: starlette.requests.Request) -> Any:
        return _response(self.ready_answer())

    async def metrics(self, _request: starlette.requests.Request) -> Any:
        return _response(self.metrics_answer())

    async def openapi(self, _request: starlette.requests.Request) -> Any:
        return starlette.responses.JSONResponse(openapi.schema())

    async def model(self, _request: starlette.requests.Request) -> Any:
        detector, batcher = self._state.detector, self._state.batcher
        if detector is None or batcher is None:
            return await self.readyz(_request)
        info = detector.info
        return starlette.responses.JSONResponse(
            {
                "name": info.name,
                "input": {
                    "name": info.input_name,
                    "height": info.input_height,
                    "width": info.input_width,
                },
                "layout": info.layout.value,
                "classes": list(info.class_names),
                "fixed_batch": info.fixed_batch,
                "providers": list(info.providers),
                "batching": dataclasses.asdict(self.config.batching),
                "detection": dataclasses.asdict(self.config.detection),
                "preprocess": dataclasses.asdict(self.config.preprocess),
            }
        )

    async def detect(self, request: starlette.requests.Request) -> Any:
        started = self._timer()
        self.instruments.inflight.inc()
        status: int = 500
        reason: str | None = "internal"
        admitted = False
        claim = self.body_budget.claim()
        try:
            if not self.admission.try_enter():  # refused before reading or decoding anything
                raise errors.OverloadedError(
                    f"{self.admission.inside} detection requests are being handled, this "
                    f"server's limit (the batching queue plus one batch)",
                    retry_after=1.0,
                )
            admitted = True
            response = await self._detect(request, started, claim)
            status, reason = response.status_code, None
            return response
        except errors.BadRequestError as e:
            status, reason = e.status, e.code
            return _error(e.status, e.code, str(e), e.hint)
        except errors.OverloadedError as e:
            status, reason = 429, "overloaded"
            return _error(429, "overloaded", str(e), "retry after the Retry-After delay",
                          **{"Retry-After": str(max(1, round(e.retry_after)))})  # fmt: skip
        except errors.NotReadyError as e:
            status, reason = 503, "not_ready"
            return _error(503, "not_ready", str(e), "retry shortly", **{"Retry-After": "1"})
        except errors.InferenceError as e:
            status, reason = 500, "inference_failed"
            self._log.error(
                "inference failed", extra={"fields": {"event": "inference_failed", "error": str(e)}}
            )
            return _error(500, "inference_failed", str(e))
        except starlette.requests.ClientDisconnect:
            # The client went away mid-upload (nginx's 499), or the connection guard closed it
            # for a body too slow (it answered 408 itself): the client's doing, not a fault.
            if connections.timed_out(request.scope) == "body":
                status, reason = 408, "body_timeout"
            else:
                status, reason = 499, "client_closed"
            return starlette.responses.Response(status_code=status)  # nobody is listening
        finally:
            claim.release()
            if admitted:
                self.admission.leave()
            elapsed = self._timer() - started
            self.instruments.inflight.dec()
            self.instruments.answered(status=status, duration_s=elapsed, reason=reason)
            self._log.info(
                "detect",
                extra={
                    "fields": {
                        "event": "request",
                        "path": "/v1/detect",
                        "status": status,
                        "reason": reason,
                        "ms": round(elapsed * 1000, 2),
                        "client": request.client.host if request.client else None,
                    }
                },
            )

    async def _detect(
        self, request: starlette.requests.Request, started: float, claim: admission.Claim
    ) -> Any:
        detector, batcher = self._state.detector, self._state.batcher
        if self.phase is not Phase.READY or detector is None or batcher is None:
            raise errors.NotReadyError(f"the server is not ready ({self.phase.value})")
        parsed = await bodies.parse(
            request, max_body_bytes=self.config.limits.max_body_bytes, claim=claim
        )
        info = detector.info
        t0 = self._timer()
        prepared = await self.decoder.prepare(
            parsed.data,
            height=info.input_height,
            width=info.input_width,
            jpeg_draft=self.config.preprocess.jpeg_draft,
        )
        t1 = self._timer()
        outcome = await batcher.submit(prepared.tensor)
        t2 = self._timer()
        defaults, options = self.config.detection, parsed.options
        thresholds = postprocessing.Thresholds(
            confidence=defaults.confidence_threshold if options.conf is None else options.conf,
            iou=defaults.iou_threshold if options.iou is None else options.iou,
            max_detections=defaults.max_detections if options.max_det is None else options.max_det,
        )
        found = await asyncio.to_thread(
            postprocessing.detections,
            outcome.output,
            layout=info.layout,
            letterbox=prepared.letterbox,
            thresholds=thresholds,
            num_classes=info.num_classes,
        )
        t3 = self._timer()
        return starlette.responses.JSONResponse(
            {
                "model": info.name,
                "image": {"width": prepared.letterbox.width, "height": prepared.letterbox.height},
                "detections": [
                    {
                        "box": [round(d.x1, 2), round(d.y1, 2), round(d.x2, 2), round(d.y2, 2)],
                        "class_id": d.class_id,
                        "class_name": info.class_name(d.class_id),
                        "score": d.score,
                    }
                    for d in found
                ],
                "timings_ms": {
                    "preprocess": round((t1 - t0) * 1000, 3),
                    "queue": round(outcome.queue_s * 1000, 3),
                    "inference": round(outcome.inference_s * 1000, 3),
                    "postprocess": round((t3 - t2) * 1000, 3),
                    "total": round((t3 - started) * 1000, 3),
                },
                "batch_size": outcome.batch_size,
            }
        )


async def _http_error(request: starlette.requests.Request, exc: Exception) -> Any:
    status = exc.status_code if isinstance(exc, starlette.exceptions.HTTPException) else 500
    detail = exc.detail if isinstance(exc, starlette.exceptions.HTTPException) else "internal error"
    hint = "see GET /openapi.json for the API" if status in (404, 405) else ""
    return _error(status, f"http_{status}", f"{request.method} {request.url.path}: {detail}", hint)


def create_app(service: Service) -> starlette.applications.Starlette:
    """The ASGI app for `service`."""
    routes = [
        starlette.routing.Route("/v1/detect", service.detect, methods=["POST"]),
        starlette.routing.Route("/v1/model", service.model, methods=["GET"]),
        starlette.routing.Route("/healthz", service.healthz, methods=["GET"]),
        starlette.routing.Route("/readyz", service.readyz, methods=["GET"]),
        starlette.routing.Route("/metrics", service.metrics, methods=["GET"]),
        starlette.routing.Route("/openapi.json", service.openapi, methods=["GET"]),
    ]
    return starlette.applications.Starlette(
        routes=routes,
        lifespan=service.lifespan,
        exception_handlers={starlette.exceptions.HTTPException: _http_error},
    )
