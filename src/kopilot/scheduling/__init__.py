"""kopilot.scheduling."""
