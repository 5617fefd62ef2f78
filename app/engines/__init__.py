"""Distributed engines `python -m app.score --engine` hands the scoring to, one module each:
`score(scorer, source, target, options) -> rows scored`, where `scorer` is an
`app.scoring.Scorer`. Each needs its extra (`spark`, `ray`)."""

from __future__ import annotations

import logging
import sys


def log_to_stderr(logger: logging.Logger) -> None:
    """An engine's start-up line on stderr when nothing has configured logging (the command)."""
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
