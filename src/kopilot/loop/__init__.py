"""kopilot.loop."""
