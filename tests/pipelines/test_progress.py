"""Progress while a run works: per-stage lines (stderr that is not a terminal, --log-file), the live
line on a terminal, --quiet, and Beam's own log kept out unless asked for."""

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from types import SimpleNamespace

from hybridmix.pipelines.cli import main
from hybridmix.pipelines.progress import STAGES, RunProgress, stage_states
from hybridmix.transforms import progress as counts
from tests.builders import other_lines, progress_lines
from tests.pipelines.test_cli import ROOT, _cli, _config, _corpus

STAGE_NAMES = ["prepare"] + [s.name for s in STAGES]
_STAGE_LINE = re.compile(
    r"^(?P<stage>[a-z ]+): (?:(?P<count>[\d,]+)(?: of (?P<total>[\d,]+))? \w+(?: in |, )|done in |\d+ input files)")
_NOTE = re.compile(r"^([\d,]+) (.+)$")


def _number(text: str | None) -> int | None:
    return None if text is None else int(text.replace(",", ""))


def _parse(message: str) -> dict:
    """A stage line -> {stage, count, total, notes: {what: number}}."""
    found = _STAGE_LINE.match(message)
    assert found, message
    notes = {}
    if message.endswith(")"):
        for note in message[message.rindex("(") + 1:-1].split(", "):
            if _NOTE.match(note):
                number, what = _NOTE.match(note).groups()
                notes[what] = _number(number)
    return {"stage": found["stage"], "count": _number(found["count"]), "total": _number(found["total"]),
            "notes": notes}


def _logged(log_file) -> list[str]:
    return [line.split(" hybridmix.progress: ", 1)[1] for line in log_file.read_text().splitlines()
            if " hybridmix.progress: " in line]


def _without_stamp(line: str) -> str:
    return line.split("] ", 1)[1]


def test_one_line_per_stage_with_the_manifest_counts(tmp_path, capsys):
    _corpus(tmp_path)
    config = _config(tmp_path)
    out, log_file = tmp_path / "out", tmp_path / "run.log"
    assert main(["run", config, "--output", str(out), "--log-file", str(log_file)]) == 0
    err = capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    totals = manifest["totals"]

    logged = _logged(log_file)
    stages = {p["stage"]: p for p in map(_parse, logged)}
    assert [_parse(line)["stage"] for line in logged] == STAGE_NAMES, logged
    # The same lines on stderr (not a terminal here), and nothing else.
    assert [_without_stamp(line) for line in progress_lines(err)] == logged
    assert other_lines(err) == []

    read = stages["read"]
    assert read["count"] == read["total"] == totals["read"] > 0
    assert read["notes"].get("filtered", 0) == totals["filtered"] > 0
    assert read["notes"].get("rejected", 0) == totals["rejected"] > 0
    assert stages["exact dedup"]["notes"]["duplicates"] == totals["exact_duplicates"] > 0
    assert stages["near dedup"]["notes"]["duplicates"] == totals["near_duplicates"] > 0
    # Each dedup and mixing stage sees everything the stage before it handed on.
    assert stages["check ids"]["count"] == stages["check ids"]["total"] == totals["read"] - totals["filtered"] \
        - totals["rejected"]
    assert stages["mix"]["count"] == stages["mix"]["total"] == totals["selected"] + totals["not_selected"]
    assert stages["mix"]["notes"]["rows selected"] == totals["written"]
    written = sum(f["rows"] for files in manifest["outputs"].values() for f in files)
    assert stages["write"]["count"] == stages["write"]["total"] == written


def test_quiet_shows_nothing_and_still_logs(tmp_path, capsys):
    _corpus(tmp_path)
    config = _config(tmp_path)
    log_file = tmp_path / "run.log"
    assert main(["run", config, "--output", str(tmp_path / "out"), "--quiet", "--log-file", str(log_file)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "TOTAL" in captured.out  # the summary is the result, not progress
    assert [_parse(line)["stage"] for line in _logged(log_file)] == STAGE_NAMES


def _run_on_terminal(*args, cwd) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; (exit code, what the terminal got, stdout)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # rows, columns
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "hybridmix.pipelines.cli", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=terminal, cwd=cwd, env=env)
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is gone
                chunk = b""
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(controller)
    stdout = proc.stdout.read().decode()
    return proc.wait(timeout=300), shown.decode(), stdout


def test_terminal_gets_one_line_rewritten_in_place(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    code, shown, stdout = _run_on_terminal("--verbose", "run", config, "--output", str(tmp_path / "out"),
                                           cwd=tmp_path)
    assert code == 0, shown
    updates = [u for u in shown.replace("\r\n", "\n").split("\r") if u.strip()]
    assert any(re.match(r"hybridmix \[ *[\d.]+ s\] (prepare|read|check ids|exact dedup|near dedup|mix|write|publish):",
                        u) for u in updates), shown
    # Cleared at the end; no finished-stage lines (those are for logs); the summary on stdout.
    assert shown.endswith("\r") and shown.rsplit("\r", 2)[-2].strip() == "", repr(shown[-300:])
    assert not [u for u in updates if re.search(r" in [\d.]+ s\b", u)], updates
    assert "TOTAL" in stdout
    # --verbose: hybridmix's own notes, cleanly on a line of their own, and nothing of Beam's.
    lines = shown.replace("\r\n", "\n").split("\n")
    assert any(line.split("\r")[-1].startswith("hybridmix: run hm-") for line in lines), shown
    assert "apache_beam" not in shown


def test_beam_log_brings_back_beams_own_log(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    result = _cli("run", config, "--output", str(tmp_path / "out"), "--beam-log", "info")
    assert result.returncode == 0, result.stderr
    assert any(" INFO apache_beam." in line for line in other_lines(result.stderr)), result.stderr[-3000:]
    assert len(progress_lines(result.stderr)) == len(STAGE_NAMES)


def _tally(count: int, first: float, last: float) -> counts.Tally:
    return counts.Tally(count, first, last)


def test_a_stage_is_handed_what_the_last_stage_before_it_passed_on():
    """Exact dedup off: near dedup's total is what checking ids passed on; write's total is every output row."""
    tallies = {
        counts.READ: _tally(100, 1.0, 3.0), counts.SCORED: _tally(95, 1.0, 3.0), counts.FILTERED: _tally(5, 1.0, 3.0),
        counts.REJECTED: _tally(7, 1.0, 4.0), counts.REJECT_RECORDS: _tally(8, 1.0, 4.0),
        counts.IDS: _tally(90, 3.5, 4.0), counts.IDS_REPEATED: _tally(2, 4.0, 4.0),
        counts.NEAR: _tally(88, 4.5, 5.0), counts.NEAR_DUPLICATES: _tally(3, 5.0, 5.0),
        counts.MIXED: _tally(0, 5.5, 5.5), counts.SELECTED_ROWS: _tally(0, 6.0, 6.0),
        counts.STAGED: _tally(10, 6.5, 6.5),
    }
    states = stage_states(tallies, 100, 0.5)
    assert [s.stage.name for s in states] == ["read", "check ids", "near dedup", "mix", "write"]
    read, ids, near, mix, write = states
    assert (read.count, read.total, read.start, read.last) == (100, 100, 0.5, 3.0)
    assert read.done_notes == ("5 filtered", "5 rejected")  # 7 rejected rows, 2 of them for repeated ids
    assert (ids.total, ids.start) == (90, 3.0)
    assert (near.total, near.start) == (88, 4.0)
    assert (mix.count, mix.total) == (0, 85)
    # Rows sorted into shards mark the stage; none written yet, of 0 + 8 + 5 + 3 output rows.
    assert (write.count, write.total, write.notes) == (0, 16, ("10 sorted into shards",))


def test_stamps_never_go_back_when_the_next_stage_starts_late():
    """A stage is known done only once the next one counts: its line is stamped then, after the
    "so far" line printed while the next one had not started (the kernels compiling, say)."""
    stream = io.StringIO()
    shown = RunProgress(stream, live=False, runner="in-process", local=True, every_s=0.1)
    counts.reset()
    shown.running(SimpleNamespace(planned_rows=100, ledger_rows=0, bad_files=[], files=[None]))
    counts.add(counts.READ, 100)
    time.sleep(0.3)
    shown._tick()  # read has stopped counting; nothing after it has started
    time.sleep(0.2)
    counts.add(counts.IDS, 100)
    shown._tick()
    lines = stream.getvalue().splitlines()
    assert any("so far" in line for line in lines) and any(line.split("] ", 1)[1].startswith("read: 100 of 100 rows in")
                                                         for line in lines), lines
    # While it waited, the line said so and counted the wait, not the read's time again.
    waiting = [line for line in lines if "so far" in line]
    assert waiting and all("read: 100 of 100 rows (100%)" in line and "; waiting for the next step, " in line
                           for line in waiting), waiting
    stamps = [float(re.match(r"hybridmix \[\s*([\d.]+) s\]", line)[1]) for line in lines]
    assert stamps == sorted(stamps), lines
    counts.reset()
