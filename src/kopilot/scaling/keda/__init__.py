"""KEDA: the KEDA-style baseline policy and kopilot's KEDA external scaler (gRPC).

`kopilot.scaling.keda.behaviour` is the baseline (pure, no gRPC). The external scaler lives in
`kopilot.scaling.keda.server` and imports grpcio; import it only where a server is wanted.
"""
