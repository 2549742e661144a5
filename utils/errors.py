"""Errors a user can fix. Entry points print their message without a traceback and exit with status 1."""


class UserError(Exception):
    """A mistake in the user's data, configuration or files; the message names the file and the fix."""


class DatasetError(UserError):
    """A dataset folder or file that cannot be used."""


class CheckpointError(UserError):
    """A checkpoint or weights file that cannot be used."""


class ConfigError(UserError):
    """A configuration override that is unknown or of the wrong type."""


class OutputError(UserError):
    """A file or folder the command must write that cannot be written (a file in the way, a read-only disk)."""


# How the running command spells a setting that library code names by its argument (``label_format``), so that
# a message says what to type: each entry point registers its own spelling (``load_config`` its script's keys).
_OPTION_NAMES: dict[str, str] = {}


def name_options(names: dict[str, str]) -> None:
    """This command's spelling of library arguments, e.g. ``{"label_format": "--GTA5_LABEL_FORMAT"}``, in place of
    any registered before."""
    _OPTION_NAMES.clear()
    _OPTION_NAMES.update(names)


def option(argument: str, value: object) -> str:
    """``argument`` set to ``value`` as the running command takes it: ``--GTA5_LABEL_FORMAT=trainIds`` in a step
    script, ``--label-format=trainIds`` in ``datasets.check``, ``label_format='trainIds'`` from Python."""
    name = _OPTION_NAMES.get(argument)
    return f"{name}={value}" if name else f"{argument}={value!r}"
