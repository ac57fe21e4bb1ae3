import json

from hybridmix.pipelines.cli import main
from hybridmix.pipelines.report import safe_text
from tests.builders import words, write_config, write_parquet

HOSTILE = "\x1b[2J\x1b[31mred\x07 bell \u202eevil\u202c \r\nnext"


def test_safe_text_neutralizes_terminal_controls():
    shown = safe_text(HOSTILE, limit=200)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown and "\r" not in shown
    assert "\\u001b[31mred" in shown and "\\n" in shown


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
