"""The one exception type for mistakes a user can fix.

The CLI turns a UserError into a single line on stderr and exit code 2; everything else
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (file, flag, data, storage), with what to do about it."""
