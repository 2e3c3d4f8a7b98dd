"""User-facing errors: every message says which input, what is wrong and what to do."""


class PerseError(Exception):
    """An error the user can act on; the CLI and app print its message without a traceback."""


class InputImageError(PerseError):
    """A photo cannot be used (unreadable, too large, too small, no usable face, ...)."""


class DatasetError(PerseError):
    """A run folder's dataset does not satisfy the contract in docs/architecture.md section 3."""


class ConfigError(PerseError):
    """A configuration file or override is malformed or names an unknown option."""


class Cancelled(PerseError):
    """Long work was asked to stop; partial results that are complete on disk are kept."""
