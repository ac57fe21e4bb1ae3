import json
import unicodedata

from hybridmix.pipelines.cli import main
from hybridmix.pipelines.report import display_width, safe_text, text_table
from tests.builders import words, write_config, write_parquet

HOSTILE = "\x1b[2J\x1b[31mred\x07 bell \u202eevil\u202c \r\nnext"


def test_safe_text_neutralizes_terminal_controls():
    shown = safe_text(HOSTILE, limit=200)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown and "\r" not in shown
    assert "\\u001b[31mred" in shown and "\\n" in shown


def test_a_cut_keeps_a_character_whole():
    """A cut never leaves a letter without its marks or an emoji without its joined parts."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    assert safe_text("ab" + family + "cd", 3) == "ab" + family + "..."
    assert safe_text("pho\u031b\u0309 bo", 3) == "pho\u031b\u0309..."  # phở, its marks typed apart
    assert safe_text("\u092c\u0939\u0941\u0924", 2) == "\u092c\u0939\u0941..."  # बहु, not बह
    assert safe_text("\U0001f44d\U0001f3fd ok", 1) == "\U0001f44d\U0001f3fd..."  # a thumb and its skin tone
    assert safe_text("plain text", 5) == "plain..." and safe_text("short", 5) == "short"


def test_tables_line_up_korean_written_in_jamo():
    nfd = unicodedata.normalize("NFD", "한국어")
    assert display_width(nfd) == display_width("한국어") == 6
    lines = text_table(["source", "rows"], [[nfd, 1], ["English", 22]]).splitlines()
    assert len({display_width(line) for line in lines}) == 1


def test_inspect_escapes_document_text(tmp_path, capsys):
    write_parquet(tmp_path / "in" / "h.parquet", [{"id": "a", "text": HOSTILE + " " + words(1, 30)}])
    write_parquet(tmp_path / "in" / "s.parquet", [{"id": "b", "text": words(2, 30)}])
    config = write_config(tmp_path / "in" / "c.yaml", {
        "corpora": [{"name": "h\x1bx", "origin": "human", "paths": ["h.parquet"], "id_column": "id"}],
        "mixture": {"targets": {"human": 1.0}},
    })
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 2  # the name is checked first
    config = write_config(tmp_path / "in" / "c.yaml", {
        "corpora": [{"name": "h", "origin": "human", "paths": ["h.parquet"], "id_column": "id"}],
        "mixture": {"targets": {"human": 1.0}},
    })
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "out"), "--rows", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\u001b[2J" in out
    assert main(["inspect", str(tmp_path / "out"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["h"]["selected"] == 1


def _small_run(tmp_path) -> str:
    write_parquet(tmp_path / "in" / "h.parquet", [{"id": f"h{i}", "text": words(i, 40)} for i in range(12)])
    write_parquet(tmp_path / "in" / "s.parquet", [{"id": f"s{i}", "text": words(90 + i, 40)} for i in range(12)])
    config = write_config(tmp_path / "in" / "c.yaml", {
        "corpora": [{"name": "h", "origin": "human", "paths": ["h.parquet"], "id_column": "id"},
                    {"name": "s", "origin": "synthetic", "paths": ["s.parquet"], "id_column": "id"}],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    })
    return config


def test_a_report_failure_never_costs_the_run_its_output(tmp_path, monkeypatch, capsys):
    config = _small_run(tmp_path)
    out = tmp_path / "out"
    monkeypatch.setenv("HYBRIDMIX_FAIL_AT", "report")
    assert main(["run", config, "--output", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "_SUCCESS").exists() and manifest["totals"]["selected"] > 0
    page = (out / "report.html").read_text()
    assert "The report could not be built" in page and "injected failure at report" in page
    assert "could not be built" in capsys.readouterr().err
    # Rebuilt once the cause is gone: the full report, in place and where --output says.
    monkeypatch.delenv("HYBRIDMIX_FAIL_AT")
    assert main(["report", str(out)]) == 0
    rebuilt = (out / "report.html").read_text()
    assert '<section id="funnel">' in rebuilt and "could not be built" not in rebuilt
    assert main(["report", str(out), "--output", str(tmp_path / "copy.html")]) == 0
    assert (tmp_path / "copy.html").read_text() == rebuilt
    assert f"wrote {out}/report.html" in capsys.readouterr().out
    # Not into the output's folders, where readers of data/ would meet a file that is not Parquet.
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    for inside in (out / "data" / "x.html", out / "x.html", tmp_path / ".out.lock"):
        assert main(["report", str(out), "--output", str(inside)]) == 2
        err = capsys.readouterr().err
        assert f"--output {inside} is " in err and f"put the page beside the output (e.g. {out}.html)" in err, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == files
    assert main(["report", str(out), "--output", str(out / "report.html")]) == 0  # its own page, as without --output
    assert (out / "report.html").read_text() == rebuilt
    # While rebuilding, the report is an output of the run like any other: inspect and --force accept it
    # (and the temporary file a killed rebuild leaves).
    (out / "report.html.inprogress").write_text("half")
    assert main(["inspect", str(out)]) == 0
    assert main(["run", config, "--output", str(out), "--force"]) == 0
    assert (out / "report.html").read_text() == rebuilt
    assert not (out / "report.html.inprogress").exists()


def test_report_needs_a_finished_run(tmp_path, capsys):
    config = _small_run(tmp_path)
    out = tmp_path / "out"
    assert main(["report", str(out)]) == 2
    assert main(["run", config, "--output", str(out)]) == 0
    success = (out / "_SUCCESS").read_bytes()
    (out / "_SUCCESS").unlink()
    assert main(["report", str(out)]) == 2
    assert "the run did not finish" in capsys.readouterr().err
    # inspect shows what an unfinished run left, and an error line ends it (exit 2), with or without --json.
    for extra in ([], ["--json"]):
        assert main(["inspect", str(out), *extra]) == 2
        shown = capsys.readouterr()
        assert "run_id" in shown.out if extra else "mixture by tokens" in shown.out
        assert shown.err.strip().splitlines()[-1] == \
            f"hybridmix: error: {out} has no _SUCCESS: the run did not finish; the above is what it left"
    (out / "_SUCCESS").write_bytes(success)
    data = next(iter((out / "data").glob("*.parquet")))
    whole = data.read_bytes()
    data.unlink()
    assert main(["inspect", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        (f"hybridmix: error: {out}: 1 file(s) listed in the manifest are missing or changed since the run wrote them; "
         "the above is what is left of the run")
    # Cut short in a copy: named with both sizes, by inspect, report and explain (exit 2, no traceback).
    data.write_bytes(whole[:500])
    for command in (["inspect", str(out)], ["report", str(out)]):
        assert main(command) == 2
        assert f"(500 bytes; the manifest says {len(whole):,})" in capsys.readouterr().err
    ledger = next(iter((out / "ledger").glob("*.parquet")))
    kept = ledger.read_bytes()
    ledger.write_bytes(kept[:300])
    assert main(["explain", str(out), "anything"]) == 2
    assert "1 file(s) of ledger/ are missing or changed since the run wrote them (ledger/" in capsys.readouterr().err
    # Damaged in place, the same size: not Parquet any more.
    ledger.write_bytes(b"\0" * len(kept))
    data.write_bytes(b"\0" * len(whole))
    for command in (["inspect", str(out)], ["explain", str(out), "anything"]):
        assert main(command) == 2
        assert "a file of the run cannot be read (" in capsys.readouterr().err
