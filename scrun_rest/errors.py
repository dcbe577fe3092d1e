"""The one exception type a user sees as a single line on stderr."""


class UserError(Exception):
    """A problem the user can act on; its text is the whole message."""

    exit_code = 1
