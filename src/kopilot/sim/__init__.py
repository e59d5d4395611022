"""kopilot.sim."""
