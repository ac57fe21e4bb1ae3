"""A long document among short ones: the mixture's last pass leaves it out when it cannot fit, and
the max_synthetic_fraction guard checks what was selected, not only the plan."""

import json

import pyarrow.parquet as pq

from hybridmix.pipelines.cli import main
from tests.builders import words, write_config, write_parquet


def _config(tmp_path, **guards):
    # 100 human paragraphs of 60 words and one "book" of 30,000; 60 synthetic answers of 100 words.
    write_parquet(tmp_path / "human.parquet", [{"id": f"h{i:02d}", "text": words(i, 60)} for i in range(100)]
                  + [{"id": "book", "text": words(999, 30_000)}])
    write_parquet(tmp_path / "chat.parquet", [{"id": f"s{i:02d}", "text": words(500 + i, 100)} for i in range(60)])
    return write_config(tmp_path / "mix.yaml", {
        "corpora": [{"name": "books", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
                    {"name": "chat", "origin": "synthetic", "paths": ["chat.parquet"], "id_column": "id"}],
        "quality": {"enabled": False},
        "mixture": {"unit": "tokens", "targets": {"human": 0.7, "synthetic": 0.3}, "guards": guards},
    })


def test_a_book_that_cannot_fit_is_left_out_and_explained(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", _config(tmp_path), "--output", str(out), "-q"]) == 0
    ids = set(pq.read_table(out / "data", columns=["doc_id"]).column("doc_id").to_pylist())
    # The synthetic side bounds the mix (30 %): the human quota is under half the book, and taking
    # it would overshoot by more than the paragraphs fall short, so every paragraph goes in without it.
    assert ids == {f"h{i:02d}" for i in range(100)} | {f"s{i:02d}" for i in range(60)}
    with open(out / "manifest.json", encoding="utf-8") as fh:
        mixture = json.load(fh)["mixture"]
    assert mixture["budget"] == "max"
    assert "note: books filled 6,100 of its 14,140-token quota" in capsys.readouterr().out
    assert main(["explain", str(out), "book"]) == 0
    said = capsys.readouterr().out
    assert "not selected" in said and "a long document of books" in said and "left out" in said


def test_the_synthetic_guard_checks_what_was_selected(tmp_path, capsys):
    out = tmp_path / "out"
    # The plan's 30 % passes a 40 % limit; the selection is half synthetic, so the run stops.
    assert main(["run", _config(tmp_path, max_synthetic_fraction=0.4), "--output", str(out), "-q"]) == 4
    err = capsys.readouterr().err
    assert "guards.max_synthetic_fraction: the selection holds" in err and "over the limit 0.4" in err
    assert "books " in err and "short of their quotas" in err
    assert not out.exists()
    assert main(["run", _config(tmp_path, max_synthetic_fraction=0.5), "--output", str(out), "-q"]) == 0
