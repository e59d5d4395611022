"""kopilot.traces."""
