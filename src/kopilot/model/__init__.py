"""kopilot.model."""
