"""kopilot.metrics."""
