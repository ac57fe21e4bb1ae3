"""The README's commands run as shown, and print what it says they print.

Shell blocks (```sh) run in a scratch folder laid out like a checkout (examples/, .venv/bin), after
the demo: each either runs and exits 0, or is listed in NOT_RUN with the reason it cannot run
offline in a test. Console blocks (lines starting with `$ `) run and must print the lines shown
(a line ending in `...` is a prefix). The demo summary in the quick start must be what `make demo`
prints today, and every inline `hybridmix ...` command on the demo output runs.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
READERS = os.environ.get("HYBRIDMIX_READERS_PYTHON", "").strip()

# First line of a shell block -> why the test does not run it.
NOT_RUN = {
    "make demo": "the quick start itself: CI runs `make install` and `make test`, and the demo summary is "
                 "checked below against a real run",
    ".ci/flink/setup.sh": "starts a Flink cluster; tests/pipelines/test_flink.py runs the demo on CI's cluster",
    "hybridmix train-scorer labelled/*.parquet": "needs a labelled corpus of the user's own; "
                                                 "tests/pipelines/test_quality_scores.py runs train-scorer end to end",
    "30 2 * * *": "a crontab line, not a command",
}


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int

    @property
    def first(self) -> str:
        return self.text.strip().splitlines()[0].strip()


def readme_blocks() -> list[Block]:
    blocks, lang, start, body = [], None, 0, []
    with open(README, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            fence = re.match(r"^```(\S*)\s*$", line)
            if fence and lang is None:
                lang, start, body = fence.group(1), number, []
            elif fence:
                blocks.append(Block(lang, "".join(body), start))
                lang = None
            elif lang is not None:
                body.append(line)
    return blocks


def _skipped(block: Block) -> bool:
    return any(block.first.startswith(prefix) for prefix in NOT_RUN)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A folder laid out like a checkout after `make demo`: examples/, .venv/bin, out/demo."""
    work = tmp_path_factory.mktemp("readme")
    os.symlink(os.path.join(ROOT, "examples"), work / "examples")
    os.makedirs(work / ".venv")
    os.symlink(os.path.dirname(sys.executable), work / ".venv" / "bin")
    demo = _sh(work, ".venv/bin/hybridmix run examples/demo.yaml --output out/demo --force")
    return work, demo.stdout


def _sh(cwd, command: str, python: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", command] if python is None else [python, "-c", command],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command!r} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_readme_has_the_blocks_this_test_knows():
    blocks = readme_blocks()
    assert any(b.lang == "sh" and b.first == "make demo" for b in blocks)
    firsts = {b.first for b in blocks if b.lang == "sh"}
    stale = [prefix for prefix in NOT_RUN if prefix != "30 2 * * *" and not any(f.startswith(prefix) for f in firsts)]
    assert not stale, f"NOT_RUN names blocks the README no longer has: {stale}"


def test_the_quick_start_summary_is_what_the_demo_prints(checkout):
    _, printed = checkout
    blocks = readme_blocks()
    at = next(i for i, b in enumerate(blocks) if b.lang == "sh" and b.first == "make demo")
    summary = blocks[at + 1]
    shown = [line.rstrip() for line in summary.text.splitlines() if line.strip()]
    lines = [line.rstrip() for line in printed.splitlines()]
    missing = [line for line in shown if line not in lines]
    assert not missing, f"README line {summary.line}: not printed by the demo today:\n" + "\n".join(missing)


@pytest.mark.parametrize("block", [b for b in readme_blocks() if b.lang == "sh"], ids=lambda b: f"line{b.line}")
def test_shell_blocks_run(checkout, block):
    if _skipped(block):
        pytest.skip(next(why for prefix, why in NOT_RUN.items() if block.first.startswith(prefix)))
    work, _ = checkout
    _sh(work, block.text)


def _console(block: Block) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each `$ ` line of a block."""
    runs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], []))
        elif runs and line.strip():
            runs[-1][1].append(line.rstrip())
    return runs


@pytest.mark.parametrize("block", [b for b in readme_blocks() if b.lang == "" and b.text.lstrip().startswith("$ ")],
                         ids=lambda b: f"line{b.line}")
def test_console_blocks_print_what_they_show(checkout, block):
    work, _ = checkout
    for command, expected in _console(block):
        printed = [line.rstrip() for line in _sh(work, command).stdout.splitlines()]
        for want in expected:
            if want.endswith("..."):
                assert any(p.startswith(want[:-3]) for p in printed), f"README line {block.line}: {want!r} not in\n{printed}"
            else:
                assert want in printed, f"README line {block.line}: {want!r} not in\n{printed}"


def _inline_commands() -> list[str]:
    """Inline `hybridmix ...` commands on the demo's files (placeholders like OUT or CONFIG are not run)."""
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    found = re.findall(r"`((?:\.venv/bin/)?hybridmix [^`]+)`", text)
    runnable = []
    for command in found:
        words = shlex.split(command)
        if any(w.startswith(("out/demo", "examples/")) for w in words) and not any(w.isupper() for w in words[1:]):
            runnable.append(command)
    return sorted(set(runnable))


@pytest.mark.parametrize("command", _inline_commands())
def test_inline_commands_on_the_demo_run(checkout, command):
    work, _ = checkout
    result = _sh(work, command + " > /dev/null")
    assert result.returncode == 0


@pytest.mark.skipif(not READERS, reason="set HYBRIDMIX_READERS_PYTHON (.ci/readers.sh prints it)")
@pytest.mark.parametrize("block", [b for b in readme_blocks() if b.lang == "python" and "out/demo" in b.text],
                         ids=lambda b: f"line{b.line}")
def test_python_blocks_on_the_demo_run(checkout, block):
    work, _ = checkout
    _sh(work, block.text, python=READERS)
