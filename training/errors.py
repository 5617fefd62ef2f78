"""The one error type training reports to its user: one line, exit status 2."""


class TrainingError(Exception):
    """Bad input or configuration; the message says what and where."""
