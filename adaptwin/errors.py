"""The errors a user can cause and fix: the CLI prints them as one line (exit 2).

Each also derives from the built-in type it replaces, so ``except ValueError`` keeps
working. Any other exception is a bug: the CLI says so and shows its traceback under ``-v``.
"""


class AdaptwinError(Exception):
    """A problem with the input, the options, the files or the machine, with its fix."""


class InvalidInput(AdaptwinError, ValueError):
    """Impossible options, unreadable audio, malformed manifests, wrong or corrupt models."""


class MissingFile(AdaptwinError, FileNotFoundError):
    """A file or folder the command needs does not exist."""


class MissingDependency(AdaptwinError, ImportError):
    """An optional package (or system library) is not installed; the message says how to get it."""


class ExternalFailure(AdaptwinError, RuntimeError):
    """A tool or device outside Python failed (apt, a TTS engine, TensorRT, an audio device)."""
