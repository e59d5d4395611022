"""kopilot.governance."""
