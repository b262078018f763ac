"""The exceptions gradlens raises: every one a ``GradlensError``, with the CLI's message."""


class GradlensError(Exception):
    """Anything gradlens reports."""


class ModelError(GradlensError):
    """A model that cannot be loaded: missing or corrupt files, an unsupported architecture."""


class InvalidArgumentError(GradlensError, ValueError):
    """An unknown method or option, or an option's value out of its range."""


class InvalidInputError(GradlensError, ValueError):
    """A text the model cannot take (empty, or longer than its context)."""


class DeviceError(GradlensError):
    """A device that is missing, or failed while running (out of memory, say)."""


class NonFiniteError(GradlensError, ArithmeticError):
    """A result with NaN or infinite scores: never returned as a success."""


class FileError(GradlensError, OSError):
    """A file that cannot be read or written."""


class CancelledError(GradlensError):
    """A run that was cancelled."""


class InternalError(GradlensError):
    """A bug in gradlens (a caught panic): please report it."""
