"""kopilot.serving."""
