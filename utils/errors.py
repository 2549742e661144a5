"""Errors a user can fix. Entry points print their message without a traceback and exit with status 1."""


class UserError(Exception):
    """A mistake in the user's data, configuration or files; the message names the file and the fix."""


class DatasetError(UserError):
    """A dataset folder or file that cannot be used."""


class CheckpointError(UserError):
    """A checkpoint or weights file that cannot be used."""


class ConfigError(UserError):
    """A configuration override that is unknown or of the wrong type."""
