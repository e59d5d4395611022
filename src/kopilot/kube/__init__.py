"""kopilot.kube."""
