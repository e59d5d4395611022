"""kopilot.kits."""
