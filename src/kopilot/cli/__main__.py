"""`python -m kopilot.cli` runs the command line."""

from kopilot.cli import main

main()
