"""What every study's analysis script needs (``experiments/<study>/analyze.py``): its command line
and one-line errors (:func:`study_main`), its runs, found under one folder, and its README's
generated sections, rewritten in place between markers.

A generated section of a README is the text between ``<!-- BEGIN <name> -->`` and
``<!-- END <name> -->``; everything outside the markers is written by hand and left alone.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from resist.analysis.runs import RunResult, RunsError, load_run, run_dirs
from resist.errors import UserError, exit_with


def study_runs(root: Path) -> list[RunResult]:
    """The finished runs under ``root``: its run directories and those of the Hydra multirun
    directories it holds, in name order. An empty or missing folder is an error naming the study's
    run script."""
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise RunsError(f"study: no runs under {root} (fix: run the study's run.sh first, see its README)")
    return [load_run(path) for path in run_dirs(folders)]


def provenance(results: Sequence[RunResult]) -> str:
    """One line: the machines (the runs' ``platform/*`` start fields) and the dates the runs finished."""
    platforms = sorted({r.platform for r in results if r.platform}) or ["not recorded"]
    dates = sorted(r.finished for r in results)
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    return f"{len(results)} runs, finished {when}; platform: {'; '.join(platforms)}"


def replace_section(readme: Path, name: str, text: str) -> None:
    """Rewrite the generated section ``name`` of ``readme`` with ``text``; a README without the
    section's markers is an error (the hand-written text decides where results go)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    source = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.DOTALL)
    if not pattern.search(source):
        raise RunsError(f"study: {readme} has no '{begin}' ... '{end}' section (fix: add the two markers)")
    replacement = f"{begin}\n{text.strip()}\n{end}"
    readme.write_text(pattern.sub(lambda _: replacement, source, count=1), encoding="utf-8")


def publish(out: Path, sections: Sequence[str], plots: Iterable[Path] = (), *, section: str = "results") -> None:
    """Write a study's results: ``sections`` (joined by newlines) into the generated ``section`` of
    ``out/README.md``, then each of ``plots`` (an iterable that writes its PNG files as it goes);
    print what was written."""
    replace_section(out / "README.md", section, "\n".join(sections))
    for path in plots:
        print(f"wrote {path}")
    print(f"wrote {out / 'README.md'} (section '{section}')")


@dataclass(frozen=True)
class Option:
    """One option of a study script's command line, ``flag VALUE``: a path (``default``: the study's
    own, None: none) or, with ``choices``, one of those names (default: none chosen)."""

    flag: str
    default: Path | None = None
    help: str | None = None
    choices: tuple[str, ...] = ()

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        if self.choices:
            parser.add_argument(self.flag, choices=self.choices, help=self.help)
        else:
            parser.add_argument(self.flag, type=Path, default=self.default, help=self.help)


@dataclass(frozen=True)
class Section:
    """A generated section of a study's README: its ``lines`` and the ``plots`` written with it (an
    iterable that writes its PNG files as it goes), under the markers of ``name``."""

    lines: Sequence[str]
    plots: Iterable[Path] = ()
    name: str = "results"


def study_main(
    argv: Sequence[str],
    *,
    doc: str | None,
    options: Sequence[Option],
    sections: Callable[[argparse.Namespace], Iterable[Section]],
) -> None:
    """A study script's ``main``: parse ``argv`` (``options`` in their order, among them ``--out``,
    the folder of the README; the description is ``doc``'s first line), then :func:`publish` each
    of ``sections(args)`` into ``args.out`` as it comes. A user error (missing runs, a README
    without markers) prints one line and exits with status 2."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    for option in options:
        option.add_to(parser)
    args = parser.parse_args(argv)
    try:
        for section in sections(args):
            publish(args.out, section.lines, section.plots, section=section.name)
    except UserError as exc:
        exit_with(str(exc))
