"""User errors and their one-line rendering.

A user error is a problem with the command line, the config or the files it names. ``main()``
prints it as one line (``resist: error: <key>: <problem> (fix: <fix>)``) and exits with status 2,
before any worker starts. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import itertools
import re


class UserError(Exception):
    """Base of errors caused by the user's input; ``str()`` is one line."""


class WorkerFailedError(RuntimeError):
    """A worker of a multi-worker run raised; ``details`` holds what it printed (its traceback)."""

    def __init__(self, rank: int, details: str) -> None:
        last = details.strip().splitlines()[-1] if details.strip() else "no message"
        super().__init__(f"worker {rank} failed: {last}" if rank >= 0 else last)
        self.rank, self.details = rank, details

    def __reduce__(self):  # picklable (submitit returns exceptions from SLURM jobs pickled)
        return (type(self), (self.rank, self.details))


def one_line(exc: BaseException) -> str | None:
    """The one-line message for a user error (ours, Hydra's or OmegaConf's), else None."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, MissingConfigException):
        return _missing_option(str(exc))
    if isinstance(exc, HydraException | OmegaConfBaseException):
        return _omegaconf_message(exc)
    return None


def _missing_option(message: str) -> str:
    """ "Could not find 'model/nope' ... Available options in 'model': <tab>a <tab>b" -> one line."""
    wanted = re.search(r"Could not find '([^']+)'", message)
    if wanted is None:
        return " ".join(message.split())
    group, _, name = wanted.group(1).rpartition("/")
    listing = message.partition("Available options in")[2].splitlines()[1:]
    choices = [line.strip() for line in itertools.takewhile(lambda line: line.startswith("\t"), listing)]
    fix = f"use one of {', '.join(choices)}" if choices else f"see the files in conf/{group}/"
    return f"{group}={name}: no such option in config group '{group}' (fix: {fix})"


def _omegaconf_message(exc: BaseException) -> str:
    """Find the OmegaConf cause (it names the key) and render key, problem and fix on one line."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    chain, cause = [], exc
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    omega = next((e for e in chain if isinstance(e, OmegaConfBaseException) and getattr(e, "full_key", None)), None)
    if omega is None:
        return " ".join(str(exc).split())
    key, problem = omega.full_key, " ".join(str(omega.msg).splitlines()[0].split())
    if isinstance(omega, ConfigKeyError | ConfigAttributeError):
        fix = (
            f"check the spelling of '{key}'; `python -m resist.run --cfg job` lists every key, and "
            "`+key=value` cannot add keys to the typed config"
        )
    else:
        fix = f"give {key} a value of the type the schema declares (see `python -m resist.run --cfg job`)"
    return f"{key}: {problem} (fix: {fix})"
