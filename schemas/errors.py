"""The base of every user error: bad input, not a bug. Its message names the input and what to do; the CLI
prints it as one line and exits with code 2, and a stage records it as a failure row."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (a file, a setting, a value); the message says which and what to do."""
