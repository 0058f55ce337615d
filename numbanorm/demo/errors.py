"""The demo's one error type: what the user asked for cannot be done, and why."""


class DemoError(ValueError):
    """Bad options, data or checkpoint; the command prints the message and exits with status 2."""
