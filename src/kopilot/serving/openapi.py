"""The OpenAPI 3.0 description of the HTTP API, served on `GET /openapi.json`."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "An error; `error.code` is stable, `error.message` says what is wrong, "
    "`error.hint` what to do next.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_OPTIONS = [
    {
        "name": "conf",
        "in": "query",
        "required": False,
        "description": "Keep detections whose score is above this (default: the server's).",
        "schema": {"type": "number", "minimum": 0, "maximum": 1},
    },
    {
        "name": "iou",
        "in": "query",
        "required": False,
        "description": "NMS IoU threshold (classic YOLO outputs only).",
        "schema": {"type": "number", "minimum": 0, "maximum": 1},
    },
    {
        "name": "max_det",
        "in": "query",
        "required": False,
        "description": "At most this many detections.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
    },
]


def schema() -> dict[str, Any]:
    """The API description (a fresh dict each call)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "kopilot model service",
            "version": "1",
            "description": "Object detection with a YOLO-family ONNX model, dynamically batched.",
        },
        "paths": {
            "/v1/detect": {
                "post": {
                    "operationId": "detect",
                    "summary": "Detect objects in one image.",
                    "parameters": _OPTIONS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "image/jpeg": binary,
                            "image/png": binary,
                            "application/octet-stream": binary,
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {"image": {"type": "string", "format": "binary"}},
                                }
                            },
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/DetectRequest"}
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The detections, in the original image's pixels.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/DetectResponse"}
                                }
                            },
                        },
                        "400": _ERROR,
                        "408": _ERROR,
                        "413": _ERROR,
                        "415": _ERROR,
                        "429": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            "/v1/model": {
                "get": {
                    "operationId": "model",
                    "summary": "The loaded model: classes, input size, output layout, batching.",
                    "responses": {"200": {"description": "Model information."}, "503": _ERROR},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers.",
                    "responses": {"200": {"description": "Alive."}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: the model is loaded and warmed up.",
                    "responses": {"200": {"description": "Ready."}, "503": _ERROR},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text exposition format).",
                    "responses": {"200": {"description": "Metrics."}},
                }
            },
        },
        "components": {
            "schemas": {
                "DetectRequest": {
                    "type": "object",
                    "required": ["image"],
                    "additionalProperties": False,
                    "properties": {
                        "image": {"type": "string", "description": "The image file, base64."},
                        "conf": {"type": "number", "minimum": 0, "maximum": 1},
                        "iou": {"type": "number", "minimum": 0, "maximum": 1},
                        "max_det": {"type": "integer", "minimum": 1, "maximum": 10000},
                    },
                },
                "Detection": {
                    "type": "object",
                    "required": ["box", "class_id", "class_name", "score"],
                    "properties": {
                        "box": {
                            "type": "array",
                            "description": "x1, y1, x2, y2 in the original image's pixels.",
                            "items": {"type": "number"},
                            "minItems": 4,
                            "maxItems": 4,
                        },
                        "class_id": {"type": "integer"},
                        "class_name": {"type": "string"},
                        "score": {"type": "number"},
                    },
                },
                "DetectResponse": {
                    "type": "object",
                    "required": ["model", "image", "detections", "timings_ms", "batch_size"],
                    "properties": {
                        "model": {"type": "string"},
                        "image": {
                            "type": "object",
                            "properties": {
                                "width": {"type": "integer"},
                                "height": {"type": "integer"},
                            },
                        },
                        "detections": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Detection"},
                        },
                        "timings_ms": {
                            "type": "object",
                            "description": "preprocess, queue, inference, postprocess, total.",
                            "additionalProperties": {"type": "number"},
                        },
                        "batch_size": {"type": "integer"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "hint": {"type": "string"},
                            },
                        }
                    },
                },
            }
        },
    }
