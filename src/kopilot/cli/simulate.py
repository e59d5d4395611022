"""`kopilot simulate`: run the digital twin on a scenario and compare policies side by side."""

from __future__ import annotations

from kopilot.cli.app import app


@app.command()
def simulate() -> None:
    """Run the bundled scenario on the digital twin (placeholder until the loop lands)."""
    raise SystemExit("not built yet")
