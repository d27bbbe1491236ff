"""The one exception type users see.

Every problem caused by the user's input (a missing file, a malformed row, a checkpoint of
another architecture) is raised as `MinbertError` with a message that names the file, the
line or field, and the fix. The CLI prints it on one line and exits non-zero; anything
else that escapes is a bug and keeps its traceback.
"""


class MinbertError(Exception):
    """A user-facing error: the message alone must tell the user what to do."""
