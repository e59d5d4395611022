"""kopilot.scaling."""
