"""Real third-party clients, run in a virtualenv of their own (scripts/setup.sh dev makes it)."""
