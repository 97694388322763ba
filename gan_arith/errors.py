"""The error type for a mistake in the user's request. Imports nothing, so every module can raise it."""


class InputError(ValueError):
    """A mistake in what the user asked for (options, files, data), not a bug: command-line entry points
    print its message as one line, no traceback.

    A ValueError, so code that catches ValueError keeps working; raise it only where the message tells
    the user what to change, and keep ValueError for internal invariants, whose tracebacks find bugs.
    """
