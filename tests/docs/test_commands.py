"""Every command README.md and docs/*.md show in their fenced ``bash`` blocks works as written.

Commands are read from the blocks (backslash continuations joined, comments dropped) and each goes
through one rule of :func:`rule_of`, none skipped silently:

- ``python -m resist.run ARGS``: run as ``ARGS dry_run=true`` (the whole config composed, typed and
  validated, the cost model printed; nothing trained, nothing written), or, for the commands in
  :data:`REAL`, trained for real as a 2-step ``+debug=fast`` run into a temporary run directory. A
  multirun (``-m``) runs as a multirun of dry runs into a temporary sweep directory, or, with Hydra's
  submitit launcher (which would submit SLURM jobs), as one dry run of its first combination.
- ``python -m resist.bench ARGS``: ``ARGS --cfg job`` (composition only: a benchmark takes minutes).
- ``python -m resist.compare ARGS``: on run directories this module makes, ``--out`` in a temporary
  folder.
- Shell set-up lines are in :data:`NOT_RUN`, each with the reason it is not run here. A command that
  matches no rule fails :func:`test_every_command_has_a_rule`.

Placeholders (``runs/default/<time>``) stand for the run directories of the commands run for real
(:data:`PLACEHOLDERS`): a ResIST and a local-SGD run of 2 steps, made first, side by side in one
folder as the jobs of a multirun. Each command runs in an empty working directory that must stay
empty. Commands run two at a time (the machine this suite is timed on has 2 cores); a command shown in
several places runs once.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

NOT_RUN = {
    "python3.11 -m venv .venv && .venv/bin/pip install -e .[dev] && .venv/bin/python -m resist.run": (
        "the Quickstart's set-up: .ci/run builds this venv and install for every CI run, and "
        "tests/e2e/test_cli.py runs the embedded default it ends with"
    ),
    ".venv/bin/python -m pytest": "the test suite itself, which this test is part of (.ci/run runs it)",
    ".venv/bin/python -m pytest tests/unit": "a part of the test suite this test is part of",
    ".venv/bin/python -m pytest tests/docs": "this test's own module",
    "source .venv/bin/activate": "this test runs in the venv's interpreter already (sys.executable stands for python)",
    "mkdir -p data/cifar10 && tar -xzf ../shared/data/cifar10-jpg.tar.gz -C data/cifar10": (
        "extracts 60,000 files into the checkout; tests/data and tests/e2e extract the same archive "
        "(the cifar10_folder fixture) and read it"
    ),
    "wandb sync runs/default/<time>/wandb/offline-run-*": "uploads to W&B over the internet, with a login",
}
"""Commands not run here, each with the reason."""

RESIST_RUN = "python -m resist.run model=preact_resnet_mini_deep"
LOCAL_SGD_RUN = "python -m resist.run protocol=local_sgd num_workers=2 launcher=torchrun"

REAL = {
    RESIST_RUN: (
        r"bytes sent by all workers \(measured, modeled wire\): (?P<sent>[\d.]+) MB to train .*"
        r"float32 local SGD would send (?P<reference>[\d.]+) MB"
    ),
    LOCAL_SGD_RUN: r"final test accuracy: ",
}
"""``python -m resist.run`` commands trained for real (2 steps of ``+debug=fast``, into a temporary run
directory), each with a pattern its output must hold; the first must also show ResIST sending fewer
bytes than local SGD would."""

PLACEHOLDERS = {
    "runs/default/<time>": RESIST_RUN,
    "runs/default/<resist run>": RESIST_RUN,
    "runs/default/<local_sgd run>": LOCAL_SGD_RUN,
    "runs/multirun/<name>/<time>": None,
}
"""Placeholder paths and the command of :data:`REAL` whose run directory each stands for (None: the
folder holding them all, as a multirun's jobs)."""

DRY_RUN_LINE = "dry run: nothing is trained, no run directory is kept"
TIMEOUT_S = 300


@dataclass(frozen=True)
class Command:
    """A command of a ``bash`` block: where it is shown, its words (placeholders kept whole) and the
    environment assignments before them."""

    where: str
    words: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        """The command as one line, the form :data:`NOT_RUN`, :data:`REAL` and :func:`rule_of` use."""
        return " ".join([*(f"{k}={v}" for k, v in self.env), *self.words])


_FENCE = re.compile(r"^```(\S*)\s*$")
_PLACEHOLDER = re.compile(r"<[^<>\n]+>")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def doc_commands(paths: list[Path] = DOCS) -> list[Command]:
    """Every command of the fenced ``bash`` blocks of ``paths``, in order."""
    commands = []
    for path in paths:
        language, pending, start = None, "", 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            fence = _FENCE.match(line.strip())
            if fence:
                language = fence.group(1) if language is None else None
                continue
            if language != "bash":
                continue
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            text, pending = pending + line, ""
            # A placeholder may hold spaces (<resist run>): keep it one word through shlex.
            words = shlex.split(_PLACEHOLDER.sub(lambda m: m.group().replace(" ", "\0"), text), comments=True)
            words = [w.replace("\0", " ") for w in words]
            env = []
            while words and _ASSIGNMENT.match(words[0]):
                key, value = words.pop(0).split("=", 1)
                env.append((key, value))
            if words:
                commands.append(Command(f"{path.relative_to(REPO)}:{start}", tuple(words), tuple(env)))
    return commands


COMMANDS = doc_commands()


def rule_of(command: Command) -> str:
    """The rule a command runs by (module docstring), or ``"no rule"``."""
    if command.text in NOT_RUN:
        return "not run"
    words = command.words
    if words[:3] == ("python", "-m", "resist.run"):
        if command.text in REAL:
            return "real run"
        if "-m" in words[3:] or "--multirun" in words[3:]:
            if any(w.startswith("hydra/launcher=") for w in words):
                return "first combination, dry run"
            return "multirun of dry runs"
        return "dry run"
    if words[:3] == ("python", "-m", "resist.bench"):
        return "composition (--cfg job)"
    if words[:3] == ("python", "-m", "resist.compare"):
        return "compare the real runs"
    return "no rule"


RUN = [c for c in COMMANDS if rule_of(c) not in ("not run", "no rule")]


@dataclass
class Outcome:
    """What running a command gave, and what is wrong with it (empty: it works as shown)."""

    argv: list[str]
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        return "\n".join(
            [*self.problems, "ran: " + shlex.join(self.argv), f"exit status {self.returncode}"]
            + [f"stdout: {self.stdout[-3000:]}", f"stderr: {self.stderr[-3000:]}"]
        )


def _environment(command: Command) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(command.env)}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _substitute(words: list[str], runs: dict[str | None, Path]) -> tuple[list[str], list[str]]:
    """``words`` with each placeholder path replaced by its run directory; the problems (an unknown
    placeholder) alongside."""
    out, problems = [], []
    for word in words:
        if _PLACEHOLDER.search(word):
            match = next((p for p in PLACEHOLDERS if p in word), None)
            if match is None:
                problems.append(f"no run directory stands for the placeholder in {word!r} (add it to PLACEHOLDERS)")
                continue
            run = runs[PLACEHOLDERS[match]]
            if PLACEHOLDERS[match] is not None and not (run / "final_model.pt").is_file():
                problems.append(f"{match} stands for the run of {PLACEHOLDERS[match]!r}, which did not finish")
            word = word.replace(match, str(run))
        out.append(word)
    return out, problems


def _first_combination(args: list[str]) -> list[str]:
    """A multirun's arguments as one run: ``-m`` dropped, each swept ``key=a,b,c`` as ``key=a``."""
    single = []
    for arg in args:
        if arg in ("-m", "--multirun"):
            continue
        key, _, value = arg.partition("=")
        if "," in value and not value.startswith(("[", "{")):
            arg = f"{key}={value.split(',')[0]}"
        single.append(arg)
    return single


def _combinations(args: list[str]) -> int:
    """How many runs a multirun's arguments sweep (``seed=0,1,2``: 3)."""
    return math.prod(len(a.split("=", 1)[1].split(",")) for a in args if "," in a.partition("=")[2])


def _argv(command: Command, args: list[str], runs: dict[str | None, Path], scratch: Path) -> list[str]:
    """The command line that runs ``command`` (its arguments ``args``, placeholders replaced) by its
    rule, writing under ``scratch`` (a real run: into its directory in ``runs``)."""
    entry, rule = [sys.executable, "-m", command.words[2]], rule_of(command)
    if rule == "dry run":
        return [*entry, *args, "dry_run=true"]
    if rule == "real run":
        return [*entry, *args, "+debug=fast", f"hydra.run.dir={runs[command.text]}"]
    if rule == "multirun of dry runs":
        return [*entry, *args, "dry_run=true", f"hydra.sweep.dir={scratch / 'sweep'}"]
    if rule == "first combination, dry run":
        return [*entry, *_first_combination(args), "dry_run=true"]
    if rule == "composition (--cfg job)":
        return [*entry, *args, "--cfg", "job"]
    assert rule == "compare the real runs", rule
    out = str(scratch / "compare")
    if "--out" in args:
        return [*entry, *args[: args.index("--out") + 1], out, *args[args.index("--out") + 2 :]]
    return [*entry, *args, "--out", out]


def _problems(command: Command, args: list[str], stdout: str, runs: dict[str | None, Path], scratch: Path) -> list[str]:
    """What is wrong with what ``command``, run by its rule, printed and wrote (it exited 0)."""
    rule, problems = rule_of(command), []
    reports = stdout.count(DRY_RUN_LINE)
    informative = {"--cfg", "--help", "--info", "-h"} & set(args)
    if rule in ("dry run", "first combination, dry run") and not informative:
        if reports != 1:
            problems.append("printed no dry-run report")
        if "launcher=slurm" in args and "sbatch plan" not in stdout:
            problems.append("printed no sbatch plan")
    if rule == "multirun of dry runs" and reports != _combinations(args):
        problems.append(f"printed {reports} dry-run reports, not {_combinations(args)}")
    if rule == "real run":
        if not (runs[command.text] / "final_model.pt").is_file():
            problems.append("wrote no final_model.pt")
        found = re.search(REAL[command.text], stdout)
        if found is None:
            problems.append(f"printed nothing matching {REAL[command.text]!r}")
        elif "sent" in found.groupdict() and not float(found["sent"]) < float(found["reference"]):
            problems.append(f"ResIST sent {found['sent']} MB, not less than local SGD's {found['reference']} MB")
    if rule == "composition (--cfg job)" and "bench:" not in stdout:
        problems.append("printed no composed benchmark config")
    if rule == "compare the real runs" and not (scratch / "compare" / "compare.md").is_file():
        problems.append("wrote no compare.md")
    return problems


def execute(command: Command, runs: dict[str | None, Path], scratch: Path) -> Outcome:
    """Run ``command`` by its rule in an empty working directory under ``scratch``; check its exit
    status, what it printed and wrote, and that the working directory stayed empty."""
    if rule_of(command) in ("not run", "no rule"):
        return Outcome([], problems=[f"{command.text!r} is not run by a rule"])
    args, problems = _substitute(list(command.words[3:]), runs)
    outcome = Outcome(_argv(command, args, runs, scratch), problems=problems)
    if problems:
        return outcome
    cwd = scratch / "cwd"
    cwd.mkdir(parents=True)
    try:
        result = subprocess.run(
            outcome.argv, cwd=cwd, env=_environment(command), capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        outcome.problems.append(f"did not finish within {TIMEOUT_S} s")
        return outcome
    outcome.returncode, outcome.stdout, outcome.stderr = result.returncode, result.stdout, result.stderr
    if result.returncode != 0:
        outcome.problems.append(f"exit status {result.returncode}")
    else:
        outcome.problems += _problems(command, args, result.stdout, runs, scratch)
    left = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
    if left:
        outcome.problems.append(f"wrote into its working directory: {left[:5]}")
    return outcome


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every command of :data:`RUN` run by its rule, by its text (a command shown twice runs once),
    two at a time: first those of :data:`REAL`, whose run directories the placeholders stand for."""
    sweep = tmp_path_factory.mktemp("doc-runs") / "sweep"
    runs: dict[str | None, Path] = {text: sweep / str(index) for index, text in enumerate(REAL)} | {None: sweep}
    scratch = tmp_path_factory.mktemp("doc-commands")
    by_text = {c.text: c for c in RUN}
    texts = list(REAL) + sorted(set(by_text) - set(REAL))
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = list(pool.map(lambda i: execute(by_text[texts[i]], runs, scratch / str(i)), range(len(REAL))))
        rest = pool.map(lambda i: execute(by_text[texts[i]], runs, scratch / str(i)), range(len(REAL), len(texts)))
        return dict(zip(texts, [*first, *rest], strict=True))


def test_every_command_has_a_rule(capsys):
    """Every command is run by a rule or listed as not run (with its reason); the lists name only
    commands the documents show."""
    rules = {c.where + " " + c.text: rule_of(c) for c in COMMANDS}
    unmatched = [where for where, rule in rules.items() if rule == "no rule"]
    shown = {c.text for c in COMMANDS}
    not_run = [c for c in COMMANDS if rule_of(c) == "not run"]
    with capsys.disabled():
        print(
            f"\ndocumented commands: {len(COMMANDS)} found in {len(DOCS)} files, {len(RUN)} run "
            f"({len({c.text for c in RUN})} distinct), {len(not_run)} listed as not run"
        )
    assert unmatched == [], "no rule runs these (add a rule, or list them in NOT_RUN with the reason)"
    assert len(COMMANDS) == len(RUN) + len(not_run)
    assert sorted(set(NOT_RUN) - shown) == [] and sorted(set(REAL) - shown) == []
    assert len(RUN) >= 30 and len(not_run) >= 5  # the blocks were read (a broken reader finds none)


@pytest.mark.parametrize("command", RUN, ids=[c.where for c in RUN])
def test_the_command_works_as_shown(command: Command, outcomes: dict[str, Outcome]):
    outcome = outcomes[command.text]
    assert outcome.problems == [], f"{command.where}: {command.text}\n{outcome.report()}"


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_relative_links_resolve():
    """Every relative link of README.md and docs/*.md names a file of the repository (and a heading
    of it, after ``#``)."""
    broken = []
    for path in DOCS:
        for target in _LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
            elif anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), flags=re.MULTILINE)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert broken == []
