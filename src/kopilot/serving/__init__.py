"""kopilot.serving: the model-serving runtime kopilot's autoscaler manages.

An object-detection server over ONNX Runtime for YOLO-family exports: image decoding and letterbox
(`preprocessing`), the detector model (`detectors`), output decoding and NMS (`postprocessing`), a
Triton-style dynamic batcher with back-pressure (`batching`), Prometheus instruments
(`instruments`), the HTTP API (`api`) and the uvicorn runner (`server`). `kopilot serve` starts it.
"""
