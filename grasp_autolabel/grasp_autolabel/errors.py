"""Errors a user can act on. The CLI prints them as one line, without a traceback."""


class CommandError(Exception):
    """A command cannot do what was asked; the message says why and what to do."""
