"""The one exception type the CLI turns into `exit 2` and a single line.

Anything raised as `UserError` is the user's to fix (a file, a field, a row); anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: the message names the file, field or row and is shown as-is, without a traceback."""
