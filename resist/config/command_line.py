"""The command line around Hydra (pure: no Hydra, no torch): ``--help``, where ``+debug`` applies,
path keys as a shell would expand them, and what a refused command leaves behind (nothing)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def debug_last(args: list[str]) -> list[str]:
    """``args`` with the ``debug`` group's overrides moved to the end (in their order): Hydra applies
    appended groups in command-line order, and ``+debug=fast`` must come after an experiment to
    shrink it, not be overridden by it."""
    debug = [a for a in args if a.lstrip("+~").split("=")[0] == "debug"]
    return [a for a in args if a not in debug] + debug


def home_expanded(args: list[str]) -> list[str]:
    """``args`` with a value that starts with ``~`` (``dataset.root=~/data``) expanded to the home
    directory: Hydra's override grammar refuses a bare ``~`` in a value, and a shell expands it only
    at the start of a word. (``~key`` alone is Hydra's deletion of a key and is left as it is.)"""
    expanded_args = []
    for arg in args:
        key, sign, value = arg.partition("=")
        expanded_args.append(f"{key}={os.path.expanduser(value)}" if sign and value.startswith("~") else arg)
    return expanded_args


INTERNAL_GROUPS = ("recipe", "bench_rounds", "short_rounds")
"""Config groups the experiments and the benchmark compose from, not chosen on the command line."""


def command_help(program: str) -> str:
    """``--help``: usage, every config group a user chooses from with its options, and where to read on."""
    entry = Path(program).stem
    groups = sorted(d for d in CONF_DIR.iterdir() if d.is_dir() and d.name not in INTERNAL_GROUPS)
    lines = [
        f"resist: ResIST, local SGD, DiLoCo and data-parallel training. Usage: python -m resist.{entry} "
        "[group=option ...] [key=value ...] [+experiment=NAME] [+debug=fast]",
        "",
        "Config groups (group=option; experiment and debug with a +):",
    ]
    for group in groups:
        lines.append(f"  {group.name}: {', '.join(sorted(p.stem for p in group.glob('*.yaml')))}")
    lines += [
        "",
        "Every key: --cfg job (the composed config, nothing run). What a run would send and hold: dry_run=true.",
        "Sweeps: -m (e.g. -m seed=0,1,2). Continue a stopped run: resume=<run dir>. Hydra's options: --hydra-help.",
        "Records: <run directory>/metrics.jsonl (README.md and docs/ list the keys).",
    ]
    return "\n".join(lines)


def expanded(path: str | None) -> str | None:
    """A path key as the shell would have expanded it: ``~`` and ``$HOME``-style variables."""
    return None if path is None else os.path.expandvars(os.path.expanduser(path))


def discard_refused_command(output_dir: Path, output_subdir: str | None, *, cwd: Path | None = None) -> None:
    """A command refused before any worker started leaves nothing behind: Hydra's record of it
    (``output_subdir`` of ``output_dir``: ``.hydra``, or ``.hydra/resume-<time>`` in a resumed run's
    directory) and its log, and then the directory Hydra made for it when nothing else is in it,
    with the parents below ``cwd`` (default: the working directory) that this leaves empty. A
    directory that holds anything else (a run's files) is kept as it is."""
    if output_subdir:
        shutil.rmtree(output_dir / output_subdir, ignore_errors=True)
    log = output_dir / "run.log"
    if not output_dir.is_dir() or any(entry != log for entry in output_dir.iterdir()):
        return
    log.unlink(missing_ok=True)
    root, folder = (cwd or Path.cwd()).resolve(), output_dir.resolve()
    with contextlib.suppress(OSError):  # (a parent that is not empty, or not ours, ends it)
        folder.rmdir()
        while folder.parent != root and folder.parent.is_relative_to(root):
            folder = folder.parent
            folder.rmdir()
