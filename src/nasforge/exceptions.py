"""Errors that nasforge raises on bad input.

Every error a user can cause (config, CLI argument, architecture, data file) is a
:class:`NasforgeError`; the CLI prints its message as one line and exits with code 2.
"""

from __future__ import annotations


class NasforgeError(Exception):
    """Base class of all user-facing nasforge errors."""


class ConfigError(NasforgeError, ValueError):
    """A config file, key or value is wrong."""


class UnknownName(ConfigError):
    """A name (space, task, strategy, op, ...) is not registered."""

    def __init__(self, kind: str, name: str, allowed: list[str]) -> None:
        self.kind, self.name, self.allowed = kind, name, allowed
        super().__init__(f"unknown {kind} {name!r}; allowed: {', '.join(allowed)}")


class InvalidArchitecture(NasforgeError, ValueError):
    """An architecture does not fit its search space."""


class RunDirError(NasforgeError):
    """A run directory is missing, already used, or not a nasforge run."""


class DataError(NasforgeError):
    """A data file or data set cannot be loaded."""


class WorkerLost(NasforgeError):
    """Worker processes kept dying (out of memory, killed) beyond the restart bound.

    Not bad input: the CLI prints it as one line with exit code 1 and the run stays resumable.
    """


class Interrupted(KeyboardInterrupt):
    """A search stopped by Ctrl-C or SIGTERM; the run is marked ``interrupted``."""

    def __init__(self, resume_command: str) -> None:
        super().__init__(resume_command)
        self.resume_command = resume_command
