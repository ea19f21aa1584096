"""The one error type for user mistakes (bad config, bad data file)."""


class InputError(ValueError):
    """A user mistake: the message names the file, field or value and what was expected.

    Entry points print it as one line and exit with code 2, never with a traceback.
    """
