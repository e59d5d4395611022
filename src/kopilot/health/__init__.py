"""kopilot.health."""
