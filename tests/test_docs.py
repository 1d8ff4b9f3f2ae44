"""The README, CONTRIBUTING.md and docs/ stay true: every example runs, every link and path exists.

Fenced blocks are tagged with a language. ``sh`` and ``python`` blocks are examples: each Markdown
file is run as one terminal session, block after block, starting at the root of a scratch
repository (a copy of ``sample_project/`` and ``dbt_package/``), with the real Redis under this
test's own key prefix. ``cd`` carries over from one shell block to the next; a Python block runs
in the session's folder, which its first line names (``# in sample_project/``). An HTML comment
on the line before a block changes what is done with it:

* ``<!-- not run: REASON -->``: the block is not run (an installation, a benchmark);
* ``<!-- exit code: N -->``: the shell block must end with exit code N (``verify`` finding skew).

The ``Example:`` of each command's ``--help`` (in the generated ``docs/cli.md``) runs there too.

The README's walk-through starts from an unbuilt copy; the guides continue from its end (a built
sample project with recent data, synced). ``yaml`` and ``json`` blocks must parse; a ``sql`` or
``yaml`` block whose first line names a file of the sample project must be an excerpt of it.
``docs/cli.md`` must equal what ``docs/gen_cli_reference.py`` generates from ``--help``. Links,
repository paths, ``dbt_features...`` names, benchmark scripts and their flags must exist, and
CONTRIBUTING.md's layout tree must name every module.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
README = REPO / "README.md"
CONTRIBUTING = REPO / "CONTRIBUTING.md"
CLI_REFERENCE = REPO / "docs" / "cli.md"
DOCS = [README, CONTRIBUTING, *sorted((REPO / "docs").glob("*.md"))]
LANGUAGES = {"sh", "python", "yaml", "json", "sql", "text"}
RUNNABLE = {"sh", "python"}
BLOCK_TIMEOUT_S = 600
DEFAULT_PORT = "6566"
"""The server examples use the default port; each run gets a free one instead."""
GENERATED_DIRS = {"target", ".dbt_features", "dbt_packages", "logs"}
"""Folders that exist only once something ran: paths in them are not checked."""
UNSET = ("DBT_FEATURES_SAMPLE_DUCKDB", "DBT_FEATURES_PG_SCHEMA", "DBT_PROJECT_DIR",
         "DBT_PROFILES_DIR", "DBT_STATE", "DBT_TARGET_PATH")
"""Settings a reader's shell does not have: the examples must work without them."""


@dataclass(frozen=True)
class Block:
    """One fenced block of a Markdown file, with the directive on the line before it."""

    path: Path
    line: int
    lang: str
    code: str
    directive: str | None
    argument: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE and self.directive != "not run"

    @property
    def exit_code(self) -> int:
        return int(self.argument) if self.directive == "exit code" else 0


FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*(not run|exit code):\s*(.*?)\s*-->$")


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path.relative_to(REPO)}:{i + 1}: unclosed code block"
        directive = DIRECTIVE.match(lines[i - 1].strip()) if i else None
        found.append(Block(path, i + 1, match.group(1), "\n".join(lines[i + 1 : end]) + "\n",
                           directive.group(1) if directive else None,
                           directive.group(2) if directive else ""))
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in DOCS for block in blocks(path)]


# -- fast checks: the text itself -------------------------------------------------------------

def load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference",
                                                  REPO / "docs" / "gen_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current():
    generator = load_generator()
    expected = generator.render(generator.collect())
    assert CLI_REFERENCE.read_text() == expected, (
        "docs/cli.md is out of date: run `.venv/bin/python docs/gen_cli_reference.py`")


def test_readme_is_short_and_starts_quickly():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text


def test_every_block_has_a_known_language_and_valid_directive():
    for block in all_blocks():
        assert block.lang in LANGUAGES, f"{block.where}: tag the block with one of {LANGUAGES}"
        if block.directive == "not run":
            assert block.lang in RUNNABLE and block.argument, (
                f"{block.where}: `not run` needs a reason and applies to sh or python blocks")
        if block.directive == "exit code":
            assert block.lang == "sh" and block.argument.isdigit(), block.where


def test_yaml_and_json_blocks_parse():
    for block in all_blocks():
        if block.lang == "yaml":
            yaml.safe_load(block.code)
        elif block.lang == "json":
            json.loads(block.code)


EXCERPT_HEADER = re.compile(r"^(?:--|#) (sample_project/\S+)")


def test_excerpts_match_the_sample_project():
    """A block headed by a sample file's path shows that file's lines (`...` marks a cut)."""
    checked = 0
    for block in all_blocks():
        lines = block.code.splitlines()
        header = EXCERPT_HEADER.match(lines[0]) if lines and block.lang in {"sql", "yaml"} else None
        if header is None:
            continue
        source = {line.strip() for line in (REPO / header.group(1)).read_text().splitlines()}
        for line in lines[1:]:
            if line.strip() and line.strip() != "...":
                assert line.strip() in source, f"{block.where}: not in {header.group(1)}: {line}"
        checked += 1
    assert checked >= 4


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    in_code = False
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_links_point_at_existing_files_and_headings():
    for path in DOCS:
        for target in LINK.findall(path.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(REPO)}: link {target}"
            assert linked.exists(), where
            if anchor:
                assert anchor in anchors(linked), where


REPO_PATH = re.compile(r"`((?:dbt_features|adapter|tests|sample_project|dbt_package|docs|\.ci)"
                       r"/[\w./-]*)`")
MODULE_NAME = re.compile(r"`(dbt_features(?:\.\w+)+)")
DBT_MACROS = {"dbt_features.training_set"}
"""Names in the dbt package's namespace, not Python's."""


def test_paths_and_module_names_exist():
    for path in DOCS:
        text = path.read_text()
        for named in REPO_PATH.findall(text):
            if not GENERATED_DIRS & set(Path(named).parts):
                assert (REPO / named).exists(), f"{path.relative_to(REPO)}: `{named}`"
        for dotted in set(MODULE_NAME.findall(text)) - DBT_MACROS:
            assert resolves(dotted), f"{path.relative_to(REPO)}: `{dotted}` does not exist"


def resolves(dotted: str) -> bool:
    """A module, or an attribute of the longest importable module in ``dotted``."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            obj = importlib.import_module(name)
            for attribute in parts[cut:]:
                if not hasattr(obj, attribute):
                    return False
                obj = getattr(obj, attribute)
            return True
    return False


BENCH_COMMAND = re.compile(r"(tests/benchmarks/\w+\.py)([^#\n]*)")


def test_benchmark_commands_use_existing_scripts_and_options():
    """The benchmark blocks are not run (minutes each): their scripts and flags must exist."""
    checked = 0
    for block in all_blocks():
        for script, arguments in BENCH_COMMAND.findall(block.code):
            source = (REPO / script).read_text()
            for flag in re.findall(r"(--[\w-]+)", arguments):
                assert f'"{flag}"' in source, f"{block.where}: {script} has no {flag}"
            checked += 1
    assert checked >= 5


def layout_tree() -> list[str]:
    """The paths of CONTRIBUTING.md's layout tree (two spaces per level)."""
    text = CONTRIBUTING.read_text().split("## Layout", 1)[1]
    tree = next(b for b in blocks(CONTRIBUTING) if b.lang == "text" and b.code in text)
    stack: list[str] = []
    paths = []
    for line in tree.code.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        stack[depth:] = [line.split()[0].rstrip("/")]
        paths.append("/".join(stack))
    return paths


def test_layout_tree_is_the_repository():
    paths = layout_tree()
    for named in paths:
        assert (REPO / named).exists(), f"CONTRIBUTING.md layout: {named} does not exist"
    modules = [p.relative_to(REPO).as_posix()
               for folder in ("dbt_features", "adapter") for p in (REPO / folder).rglob("*.py")
               if p.name != "__init__.py"]
    missing = sorted(set(modules) - set(paths))
    assert not missing, f"CONTRIBUTING.md layout misses {missing}"


# -- the examples, run ------------------------------------------------------------------------

class Session:
    """A reader's terminal: a working folder that `cd` moves, a clean environment."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root.resolve()
        self.cwd = self.root
        self.state = tmp / "cwd_after_block"
        self.env = {k: v for k, v in os.environ.items() if k not in UNSET}
        self.env["PATH"] = f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        self.port = str(free_port())

    def run(self, block: Block) -> None:
        if block.lang == "sh":
            self.shell(block.code, block.where, block.exit_code)
        else:
            self.python(block)

    def shell(self, code: str, where: str, exit_code: int = 0) -> None:
        """Run ``code`` in bash from the current folder; keep the folder it ends in. Jobs it
        left in the background are stopped when it ends."""
        state = shlex.quote(str(self.state))
        script = (f"cd {shlex.quote(str(self.cwd))}\n"
                  f"trap 'pwd > {state}; kill $(jobs -p) 2> /dev/null || true' EXIT\n"
                  f"set -eo pipefail\n{code.replace(DEFAULT_PORT, self.port)}")
        self._check(where, ["bash", "-c", script], exit_code)
        self.cwd = Path(self.state.read_text().strip()).resolve()

    def python(self, block: Block) -> None:
        first = block.code.splitlines()[0]
        named = re.match(r"# in (the repository root|(\S+?)/)", first)
        assert named, f"{block.where}: a Python example's first line names its folder"
        folder = self.root if named.group(2) is None else (self.root / named.group(2)).resolve()
        assert self.cwd == folder, f"{block.where}: runs in {self.cwd}, not in {folder}"
        self._check(block.where, [sys.executable, "-c", block.code], 0)

    def _check(self, where: str, command: list[str], exit_code: int) -> None:
        process = subprocess.Popen(command, cwd=self.cwd, env=self.env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            out, err = process.communicate(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"{where}: still running after {BLOCK_TIMEOUT_S} s\n{out}\n{err}")
        assert process.returncode == exit_code, (
            f"{where}: exit code {process.returncode}, expected {exit_code}\n"
            f"--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_examples(path: Path, session: Session) -> int:
    """Run the examples of ``path`` in ``session``, in order; how many ran."""
    ran = 0
    for block in blocks(path):
        if block.runs:
            session.run(block)
            ran += 1
    return ran


GUIDES = [p for p in DOCS if p != README and any(b.runs for b in blocks(p))]
IGNORED = shutil.ignore_patterns("target", "logs", "dbt_packages", ".dbt_features", "*.duckdb*")


def walked_session(built: Path, tmp: Path) -> Session:
    """A session in a copy of ``built`` (a sample project built with recent data, with the
    dbt package beside it), synced: where the README's walk-through ends."""
    root = tmp / "repo"
    shutil.copytree(built.parent, root, ignore=shutil.ignore_patterns("logs", ".dbt_features"))
    session = Session(root, tmp)
    session.shell("cd sample_project\ndbt-features sync\n", "setup: sync")
    session.cwd = session.root
    return session


@pytest.mark.integration
@pytest.mark.redis
def test_readme_examples_run(tmp_path, redis_prefix):
    """From an unbuilt copy of the sample project, as a new reader starts."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "sample_project", root / "sample_project", ignore=IGNORED)
    shutil.copytree(REPO / "dbt_package", root / "dbt_package")
    assert run_examples(README, Session(root, tmp_path)) >= 3


@pytest.mark.integration
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("guide", GUIDES, ids=[p.name for p in GUIDES])
def test_guide_examples_run(guide, tmp_path, recent_duckdb, redis_prefix):
    assert run_examples(guide, walked_session(recent_duckdb, tmp_path)) >= 1


HELP_EXAMPLES_NOT_RUN = {
    "serve": "serves until stopped; docs/serving.md starts a server and asks it",
    "diff": "needs another environment's artifacts; docs/diff.md makes them and runs diff",
}


def help_examples() -> list[tuple[str, str]]:
    """(command name, command line) of every example in the generated reference: the lines
    after ``Example:`` or ``Examples:`` up to a blank line, continuation lines joined."""
    examples = []
    for block in blocks(CLI_REFERENCE):
        lines = block.code.splitlines()
        for start in [i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:")]:
            pending = ""
            for line in lines[start + 1:]:
                if not line.strip():
                    break
                pending += line.strip()
                if pending.endswith("\\"):
                    pending = pending[:-1].rstrip() + " "
                    continue
                words = pending.split()
                examples.append((words[words.index("dbt-features") + 1], pending))
                pending = ""
    return examples


@pytest.mark.integration
@pytest.mark.redis
@pytest.mark.slow
def test_cli_reference_examples_run(tmp_path, recent_duckdb, redis_prefix):
    """Every `--help` example but those in HELP_EXAMPLES_NOT_RUN, on the walked sample."""
    examples = help_examples()
    assert examples, "no `Example:` in docs/cli.md"
    session = walked_session(recent_duckdb, tmp_path)
    session.cwd = session.root / "sample_project"
    failures = []
    for name, command in examples:
        if name not in HELP_EXAMPLES_NOT_RUN:
            try:
                session.shell(command + "\n", f"the example of `dbt-features {name} --help`")
            except AssertionError as exc:
                failures.append(str(exc).split("\nassert ")[0])
    assert not failures, "\n\n".join(failures)
