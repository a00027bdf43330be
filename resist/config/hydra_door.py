"""The one door between Hydra/OmegaConf and the project: the only module of the package that
imports them. It registers the schemas, turns a composed config into the typed :class:`Config`,
saves and loads a run's ``resolved_config.yaml`` (workers load theirs through it, with the same
checks), runs an entry point under ``@hydra.main``, and renders Hydra's and OmegaConf's errors as
one line.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from resist.config import schema
from resist.config.command_line import (
    CONF_DIR,
    command_help,
    debug_last,
    discard_refused_command,
    expanded,
    home_expanded,
)
from resist.config.resume_rules import check_resume_overrides
from resist.config.schema import (
    PROTOCOL_CONFIGS,
    BenchConfig,
    Config,
    ConfigError,
    ProtocolName,
    lr_per_256_images,
    paper_min_depth,
)
from resist.config.validate import validate
from resist.errors import UserError, WorkerFailedError, exit_with
from resist.run_dir import RunDir


def register_schemas() -> None:
    """Register the schemas ``conf/config.yaml`` (``base_config``) and ``conf/bench.yaml``
    (``base_bench``) compose onto, and the config resolvers."""
    OmegaConf.register_new_resolver("paper_min_depth", paper_min_depth, replace=True)
    OmegaConf.register_new_resolver("lr_per_256_images", lr_per_256_images, replace=True)
    OmegaConf.register_new_resolver("resume_dir", _resume_dir, replace=True)
    OmegaConf.register_new_resolver("resume_output_subdir", _resume_output_subdir, replace=True)

    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    store.store(name="base_bench", node=BenchConfig)
    for name, schema_type in PROTOCOL_CONFIGS.items():  # conf/protocol/<name>.yaml composes onto these
        store.store(group="protocol", name=f"schema_{name.value}", node=schema_type)


class ResumeError(UserError):
    pass


def _resume_dir(resume: str | None, dry_run: bool, new_run_dir: str) -> str:
    """``hydra.run.dir``: the run being resumed (it must hold a run), a temporary directory for a dry
    run (deleted when it ends), else a new directory."""
    if dry_run:
        return dry_run_dir()
    if resume is None:
        return new_run_dir
    config = RunDir(Path(resume)).resolved_config
    if not config.is_file():
        raise ResumeError(
            f"resume: {resume} is not a run directory (it has no {config.name}) "
            "(fix: give the directory a run printed as 'run directory: ...', e.g. resume=runs/default/<time>)"
        )
    return resume


@functools.cache
def dry_run_dir() -> str:
    """Where Hydra writes its files during a dry run (the job deletes it)."""
    return tempfile.mkdtemp(prefix="resist-dry-run-")


@functools.cache
def _resume_output_subdir(resume: str | None) -> str:
    """Hydra's own files: ``.hydra``, or for a resume a new ``.hydra/resume-<time>`` (the run's are kept).
    The same answer every time in one command (Hydra resolves it more than once)."""
    return ".hydra" if resume is None else f".hydra/resume-{time.strftime('%Y-%m-%d_%H-%M-%S')}"


def resumed_config(composed: DictConfig, overrides: list[str], schema: type[Config] = Config) -> DictConfig:
    """The config a ``resume=<run dir>`` command continues with: the run's saved config, with the
    command line's ``overrides`` applied where they cannot change its trajectory (others are refused
    with a :class:`ConfigError` naming them)."""
    keys = check_resume_overrides(overrides)
    saved = OmegaConf.load(RunDir(Path(composed.resume)).resolved_config)
    for key in keys:
        value = OmegaConf.select(composed, key)
        plain_value = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
        OmegaConf.update(saved, key, plain_value, merge=False)
    saved.resume = composed.resume
    return _typed_node(saved, schema)


def to_typed_config(cfg: DictConfig, schema: type[Config] = Config) -> Config:
    """Convert a composed config to ``schema``, rejecting keys the schema does not have.

    ``OmegaConf.to_object`` silently drops keys appended to a typed node (``+model.foo=1``);
    they are reported here instead. Path keys (``dataset.root``, ``dataset.cache_dir``) have ``~``
    and environment variables expanded.
    """
    _reject_unknown_keys(cfg, schema, prefix="")
    typed = OmegaConf.to_object(cfg)
    assert isinstance(typed, schema)
    typed.dataset.root, typed.dataset.cache_dir = expanded(typed.dataset.root), expanded(typed.dataset.cache_dir)
    return typed


def _reject_unknown_keys(node: Any, schema: type, prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        full_key = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(
                full_key,
                f"is not a config key (known here: {known})",
                f"remove '+{full_key}=...' or correct its spelling",
            )
        child = node[key] if not OmegaConf.is_missing(node, key) else None
        if isinstance(child, DictConfig):  # its own type: a protocol's is a subclass of the field's
            child_type = OmegaConf.get_type(child)
            if not dataclasses.is_dataclass(child_type):
                child_type = _dataclass_type(fields[key].type)
            if child_type is not None:
                _reject_unknown_keys(child, child_type, prefix=f"{full_key}.")


def _dataclass_type(annotation: Any) -> type | None:
    """The dataclass a field annotation names, or None (annotations are strings here)."""
    candidate = getattr(schema, annotation, None) if isinstance(annotation, str) else annotation
    return candidate if dataclasses.is_dataclass(candidate) else None


Job = Callable[[Any, RunDir, bool], Any]
"""An entry point's job: ``job(config, run_dir, resume)``."""


def hydra_entry(config_name: str, schema: type[Config], job: Job):
    """A ``@hydra.main`` function over ``conf/<config_name>.yaml``: each job (one per multirun
    combination) calls ``job(config, run_dir, resume)`` with the typed, validated config, Hydra's
    output directory for it and whether the command resumes the run there (``resume=<run dir>``).

    The config handed on is what the run is, the same for every command that continues it: its
    ``resume`` key is the command's, so it is None past this door (``resume`` says it instead)."""
    register_schemas()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def entry(cfg: DictConfig) -> Any:
        try:
            if cfg.get("resume") is not None:
                cfg = resumed_config(cfg, list(HydraConfig.get().overrides.task), schema)
            typed = to_typed_config(cfg, schema)
            validate(typed)
            resume, typed.resume = typed.resume is not None, None
            return job(typed, RunDir(Path(HydraConfig.get().runtime.output_dir)), resume)
        except UserError as exc:  # raised inside a Hydra job (a multirun's too): reported here, in one line
            discard_refused_command(Path(HydraConfig.get().runtime.output_dir), HydraConfig.get().output_subdir)
            exit_with(str(exc))

    return entry


def run_entry(entry: Callable[[], Any]) -> None:
    """Call a ``@hydra.main`` function, rendering user errors and worker failures as
    :func:`run_main` says."""
    user_wants_traceback = "HYDRA_FULL_ERROR" in os.environ
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        entry()
    except WorkerFailedError as exc:
        print(exc.details, file=sys.stderr)
        exit_with(str(exc), status=1)
    except Exception as exc:
        message = None if user_wants_traceback else one_line(exc)
        if message is None:
            raise
        exit_with(message)


def run_main(config_name: str, schema: type[Config], job: Job) -> None:
    """The command-line entry over ``conf/<config_name>.yaml``: :func:`hydra_entry` run by
    :func:`run_entry`. User errors (config, data, devices) print ``resist: error: <key>: <problem>
    (fix: <fix>)`` and exit with status 2 before training starts; a failed worker prints its traceback,
    then one line naming it, and exits with status 1. ``HYDRA_FULL_ERROR=1`` keeps full tracebacks.
    ``+debug=...`` applies after everything else wherever it stands on the command line
    (:func:`debug_last`), and ``~`` starting a value is the home directory (:func:`home_expanded`)."""
    sys.argv[1:] = home_expanded(debug_last(sys.argv[1:]))
    if "--help" in sys.argv[1:]:  # (Hydra's own would list the internal groups too; --hydra-help is Hydra's)
        print(command_help(sys.argv[0]))
        return
    run_entry(hydra_entry(config_name, schema, job))


def plain(cfg: Config) -> dict[str, Any]:
    """``cfg`` as plain YAML-ready data (enums as their names)."""
    data = OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True)
    assert isinstance(data, dict)
    return data


def resolved_config_text(cfg: Config) -> str:
    """``cfg`` as the YAML of a run's ``resolved_config.yaml`` (what :func:`load_run_config` reads
    back to an equal config)."""
    return OmegaConf.to_yaml(OmegaConf.create(plain(cfg)))


def save_resolved_config(run_dir: RunDir, cfg: Config) -> None:
    """Write a new run's ``resolved_config.yaml``."""
    run_dir.resolved_config.write_text(resolved_config_text(cfg), encoding="utf-8")


def load_resolved_config(run_dir: RunDir) -> dict[str, Any]:
    """A run's ``resolved_config.yaml`` as plain data."""
    data = OmegaConf.to_container(OmegaConf.load(run_dir.resolved_config), resolve=True)
    assert isinstance(data, dict)
    return data


def load_run_config(run_dir: RunDir) -> Config:
    """The typed config of a prepared run directory, through the same checks as the command line:
    the schema's types, no unknown key, and :func:`validate`."""
    typed = to_typed_config(_typed_node(OmegaConf.load(run_dir.resolved_config)))
    validate(typed)
    return typed


def _typed_node(saved: Any, schema: type[Config] = Config) -> DictConfig:
    """A saved (plain) config merged onto ``schema``, its protocol node typed by the protocol's own
    config as composition types it."""
    try:
        protocol = PROTOCOL_CONFIGS[ProtocolName(OmegaConf.select(saved, "protocol.name", default="none"))]()
    except ValueError as exc:
        raise ConfigError("protocol.name", str(exc), f"use one of {', '.join(p.value for p in ProtocolName)}") from None
    node = OmegaConf.merge(OmegaConf.structured(schema(protocol=protocol)), saved)
    assert isinstance(node, DictConfig)
    return node


# -- Hydra's and OmegaConf's errors, on one line ------------------------------------------------


REMOVED_KEYS = {
    "launcher.dry_run": "use dry_run=true: with launcher=slurm it also prints the sbatch plan, no cluster needed",
}
"""Keys the config had once, and what replaces each."""


def one_line(exc: BaseException) -> str | None:
    """The one-line message for a user error (ours, Hydra's or OmegaConf's), else None."""
    cause: BaseException | None = exc
    while cause is not None:  # ours, possibly raised inside a resolver and wrapped by OmegaConf
        if isinstance(cause, UserError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
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
    chain, cause = [], exc
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    omega = next((e for e in chain if isinstance(e, OmegaConfBaseException) and getattr(e, "full_key", None)), None)
    if omega is None:
        return " ".join(str(exc).split())
    key, problem = omega.full_key, " ".join(str(omega.msg).splitlines()[0].split())
    if key in REMOVED_KEYS:
        return f"{key}: there is no such key any more (fix: {REMOVED_KEYS[key]})"
    protocol_type = getattr(omega, "object_type", None)
    if isinstance(omega, ConfigKeyError | ConfigAttributeError) and protocol_type in PROTOCOL_CONFIGS.values():
        name = protocol_type().name.value
        keys = ", ".join(f.name for f in dataclasses.fields(protocol_type))
        return (
            f"{key}: protocol={name} has no such key (its keys: {keys}) "
            f"(fix: remove {key}, or choose a protocol that has it)"
        )
    if isinstance(omega, ConfigKeyError | ConfigAttributeError):
        fix = (
            f"check the spelling of '{key}'; `python -m resist.run --cfg job` lists every key, and "
            "`+key=value` cannot add keys to the typed config"
        )
    else:
        fix = f"give {key} a value of the type the schema declares (see `python -m resist.run --cfg job`)"
    return f"{key}: {problem} (fix: {fix})"
