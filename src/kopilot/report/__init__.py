"""kopilot.report."""
