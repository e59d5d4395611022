"""kopilot.cost."""
