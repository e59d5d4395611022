"""What it costs and what is wasted: prices, cost attribution, idle detection, rightsizing.

Everything here is pure: the CLI fetches usage through `kopilot.metrics` and passes series in.

- `prices`: the price book (OpenCost on-prem defaults, or a user's YAML) and GPU/MIG shares.
- `usage`: the usage history of one container, as the policies see it.
- `attribution`: `max(request, usage) x price` per pod, workload, namespace and label, plus idle.
- `idle`: GPUs allocated but idle, services that could scale to zero, oversized requests.
- `histograms`: the VPA recommender's exponential, decaying histogram.
- `rightsizing`: the krr "simple" strategy, the VPA recommender, and kopilot's own.
- `replay`: what a recommendation would have wasted and broken on later usage.
"""
