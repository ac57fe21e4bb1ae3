"""decontaminate: evaluation items kept out of the mix, end to end, on the bundled sample's real text."""

import json
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.build import prepare_run
from hybridmix.pipelines.cli import main
from hybridmix.schemas.config import load_config
from tests.builders import write_config, write_parquet

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "data")


@pytest.fixture(scope="module")
def sample():
    wiki = pq.read_table(os.path.join(EXAMPLES, "human_wikipedia.parquet"), columns=["id", "text"]).to_pylist()
    answers = pq.read_table(os.path.join(EXAMPLES, "synthetic_alpaca_eval.parquet"),
                            columns=["id", "text", "prompt"]).to_pylist()
    return wiki[:300], answers[:300], wiki[1000:1010]


def _inputs(root, sample, eval_sets, mode="drop"):
    wiki, answers, items = sample
    # Plant evaluation items: one verbatim, one inside a longer answer, one shouted.
    human = [dict(r) for r in wiki]
    human[5]["text"] = items[0]["text"]
    synthetic = [{"id": r["id"], "text": r["text"]} for r in answers]
    synthetic[7]["text"] = synthetic[7]["text"] + "\n\n" + items[1]["text"]
    synthetic[9]["text"] = items[2]["text"].upper()
    write_parquet(root / "human.parquet", human)
    write_parquet(root / "answers.parquet", synthetic)
    return write_config(root / "mix.yaml", {
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
            {"name": "answers", "origin": "synthetic", "paths": ["answers.parquet"], "id_column": "id"},
        ],
        "decontaminate": {"against": eval_sets, "mode": mode},
        "mixture": {"unit": "documents", "targets": {"human": 0.5, "synthetic": 0.5}},
    })


def _write_eval(root, items):
    write_parquet(root / "eval" / "wiki_items.parquet",
                  [{"item": r["id"], "question": r["text"]} for r in items[:2]])
    with open(root / "eval" / "more.jsonl", "w", encoding="utf-8") as fh:
        for r in items[2:]:
            fh.write(json.dumps({"text": r["text"]}) + "\n")
    return [
        {"name": "wiki_qa", "paths": ["eval/wiki_items.parquet"], "text_column": "question", "id_column": "item"},
        {"name": "more", "paths": ["eval/*.jsonl"]},
    ]


def test_planted_items_are_removed_with_their_item_and_span(tmp_path, sample, capsys):
    root = tmp_path / "in"
    eval_sets = _write_eval(root, sample[2])
    config = _inputs(root, sample, eval_sets)
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    filtered = pq.read_table(out / "filtered")
    hits = filtered.filter(pc.equal(filtered.column("filter"), "decontaminate")).sort_by("doc_id").to_pylist()
    wiki, answers, items = sample
    assert {(h["doc_id"], h["eval_set"], h["eval_item"]) for h in hits} == {
        (wiki[5]["id"], "wiki_qa", items[0]["id"]),
        (answers[7]["id"], "wiki_qa", items[1]["id"]),
        (answers[9]["id"], "more", "more.jsonl:0"),
    }
    for hit in hits:
        assert hit["reason"] == "contaminated" and hit["value"] >= 1
        assert (hit["comparison"], hit["threshold"], hit["filters_failed"]) == (">=", 1.0, ["decontaminate"])
        assert hit["matched_span"] and hit["matched_span"] in hit["text"]  # original characters
        assert hit["detail"] == (f"{int(hit['value'])} 13-gram(s) of item {hit['eval_item']!r} "
                                 f"of evaluation set {hit['eval_set']!r}")
    data_ids = set(pq.read_table(out / "data", columns=["doc_id"]).column("doc_id").to_pylist())
    assert not data_ids & {h["doc_id"] for h in hits}

    manifest = json.loads((out / "manifest.json").read_text())
    decon = manifest["decontamination"]
    assert decon["sets"]["wiki_qa"]["items"] == 2 and decon["sets"]["more"]["items"] == 8
    assert decon["sets"]["wiki_qa"]["documents"] == {"by_source": {"answers": 1, "wiki": 1}, "total": 2}
    assert decon["sets"]["more"]["documents"]["total"] == 1
    assert decon["sets"]["more"]["tokens"]["total"] > 0
    assert [f["path"] for f in decon["sets"]["more"]["files"]] == ["eval/more.jsonl"]
    for source, counts in manifest["counts"].items():
        assert counts["read"] == (counts["rejected"] + counts["filtered"] + counts["exact_duplicates"]
                                  + counts["near_duplicates"] + counts["not_selected"] + counts["selected"])
    assert main(["inspect", str(out)]) == 0
    assert "decontamination (>= 1 13-grams, removed" in capsys.readouterr().out


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_json_lines_evaluation_sets_are_read(tmp_path, sample, compression):
    """As corpora are: the compression is found from the file's first bytes."""
    root = tmp_path / "in"
    (root / "eval").mkdir(parents=True)
    lines = "".join(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n" for r in sample[2][2:])
    name = "more.jsonl.gz" if compression == "gzip" else "more.jsonl.zst"
    with pa.CompressedOutputStream(str(root / "eval" / name), compression) as fh:
        fh.write(lines.encode("utf-8"))
    config = _inputs(root, sample, [{"name": "more", "paths": [f"eval/{name}"]}])
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    filtered = pq.read_table(out / "filtered")
    hits = filtered.filter(pc.equal(filtered.column("filter"), "decontaminate")).to_pylist()
    assert [(h["doc_id"], h["eval_set"]) for h in hits] == [(sample[1][9]["id"], "more")]
    assert json.loads((out / "manifest.json").read_text())["decontamination"]["sets"]["more"]["items"] == 8


def test_json_lines_evaluation_sets_are_read_record_by_record(tmp_path, sample, capsys):
    """Published evaluation sets are loosely typed: a key the run does not use holds an object in one
    record and a string in the next, ids are numbers and strings, a record lacks the text (Arrow's
    whole-file reader stopped the run on the first two). A line that is not JSON names itself."""
    root = tmp_path / "in"
    (root / "eval").mkdir(parents=True)
    items = sample[2]
    records = [{"qid": 1, "text": items[2]["text"], "meta": {"source": "x"}},
               {"qid": "q-2", "text": items[3]["text"], "meta": "plain string"},
               {"qid": 3, "meta": None},
               {"text": items[4]["text"], "meta": [1, "two"]}]
    with open(root / "eval" / "loose.jsonl", "w", encoding="utf-8") as fh:
        fh.write("\ufeff" + "\r\n".join(json.dumps(r) for r in records) + "\r\n")
    eval_set = {"name": "loose", "paths": ["eval/loose.jsonl"], "id_column": "qid"}
    config = _inputs(root, sample, [eval_set])
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    filtered = pq.read_table(out / "filtered")
    hits = filtered.filter(pc.equal(filtered.column("filter"), "decontaminate")).to_pylist()
    assert [(h["doc_id"], h["eval_item"]) for h in hits] == [(sample[1][9]["id"], "1")]
    figures = json.loads((out / "manifest.json").read_text())["decontamination"]["sets"]["loose"]
    assert figures["items"] == 4 and figures["indexed"] == 3

    with open(root / "eval" / "loose.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"qid": 5, "text": "cut off her')
    assert main(["run", config, "--output", str(tmp_path / "out2")]) == 3
    assert ("loose.jsonl: line 5 of evaluation set 'loose': not valid JSON: unexpected end of data"
            in capsys.readouterr().err)


def test_items_that_share_an_id_but_not_a_text_are_all_checked(tmp_path, sample):
    """A set's items were one per id: a test and a validation file both numbering their items 0..n, or
    two files named test.jsonl whose default ids (<file name>:<row>) are the same, had the second
    file's items never indexed, and the training documents that copy them stayed in the mix."""
    root = tmp_path / "in"
    items = sample[2]
    for folder, part in (("a", items[2:5]), ("b", items[5:8])):
        (root / "eval" / folder).mkdir(parents=True)
        with open(root / "eval" / folder / "test.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"n": i, "text": r["text"]}) + "\n" for i, r in enumerate(part))
    wiki, answers, _ = sample
    human = [dict(r) for r in wiki]
    planted = {}
    for k, r in enumerate(items[2:8]):  # every item of both files copied into a human document
        human[20 + k]["text"] = r["text"]
        planted[human[20 + k]["id"]] = r["text"]
    write_parquet(root / "human.parquet", human)
    write_parquet(root / "answers.parquet", [{"id": r["id"], "text": r["text"]} for r in answers])
    for eval_set in ({"name": "qa", "paths": ["eval/*/test.jsonl"]},
                     {"name": "qa", "paths": ["eval/*/test.jsonl"], "id_column": "n"}):
        config = write_config(root / "mix.yaml", {
            "corpora": [
                {"name": "wiki", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
                {"name": "answers", "origin": "synthetic", "paths": ["answers.parquet"], "id_column": "id"},
            ],
            "decontaminate": {"against": [eval_set]},
            "mixture": {"unit": "documents", "targets": {"human": 0.5, "synthetic": 0.5}},
        })
        out = tmp_path / f"out-{len(eval_set)}"
        assert main(["run", config, "--output", str(out)]) == 0
        filtered = pq.read_table(out / "filtered")
        hits = filtered.filter(pc.equal(filtered.column("filter"), "decontaminate")).column("doc_id").to_pylist()
        assert set(hits) == set(planted)
        figures = json.loads((out / "manifest.json").read_text())["decontamination"]["sets"]["qa"]
        assert figures["items"] == 6 and figures["distinct_items"] == 6 and figures["indexed"] == 6


def test_flag_mode_keeps_the_document_and_names_the_set(tmp_path, sample):
    root = tmp_path / "in"
    config = _inputs(root, sample, _write_eval(root, sample[2]), mode="flag")
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    data = pq.read_table(out / "data", columns=["doc_id", "quality_flags"]).to_pylist()
    flagged = {r["doc_id"]: r["quality_flags"] for r in data if any(f.startswith("contaminated:") for f in r["quality_flags"])}
    wiki, answers, _ = sample
    assert "contaminated:wiki_qa" in flagged[wiki[5]["id"]]
    filtered = pq.read_table(out / "filtered")
    assert "decontaminate" not in filtered.column("filter").to_pylist()


def test_unusable_evaluation_sets_stop_the_run_before_any_work(tmp_path, sample, capsys):
    root = tmp_path / "in"
    missing = _inputs(root, sample, [{"name": "gone", "paths": ["eval/nothing-*.parquet"]}])
    assert main(["run", missing, "--output", str(tmp_path / "out")]) == 3  # like a corpus glob
    assert "no file matches 'eval/nothing-*.parquet'" in capsys.readouterr().err
    write_parquet(root / "eval" / "items.parquet", [{"question": sample[2][0]["text"]}])
    no_column = _inputs(root, sample, [{"name": "qa", "paths": ["eval/items.parquet"]}])
    assert main(["run", no_column, "--output", str(tmp_path / "out")]) == 3
    assert "has no column 'text'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("items", [[], [{"text": "too short"}, {"text": None}]], ids=["no-rows", "nothing-long-enough"])
def test_an_evaluation_set_that_indexes_nothing_stops_the_run(tmp_path, sample, capsys, items):
    """Decontaminating against a set none of whose items can match would pass every document silently."""
    root = tmp_path / "in"
    write_parquet(root / "eval" / "empty.parquet", items, schema=pa.schema([("text", pa.string())]))
    config = _inputs(root, sample, [{"name": "qa", "paths": ["eval/empty.parquet"]}])
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 3
    assert "decontaminate.against[0] (qa): none of its" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_index_past_its_bound_stops_the_run_with_nothing_written(tmp_path, sample, capsys):
    root = tmp_path / "in"
    config = _inputs(root, sample, _write_eval(root, sample[2]))
    with open(config, encoding="utf-8") as fh:
        text = fh.read()
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(text.replace("decontaminate:", "decontaminate:\n  max_index_ngrams: 50"))
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 2
    assert "more than decontaminate.max_index_ngrams (50)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".inprogress")]  # no staging left


def test_the_run_id_follows_the_evaluation_files(tmp_path, sample, capsys):
    root = tmp_path / "in"
    config = _inputs(root, sample, _write_eval(root, sample[2]))
    assert main(["validate", config]) == 0
    assert "evaluation set more: 1 file(s)" in capsys.readouterr().out

    def run_id() -> str:
        return prepare_run(load_config(config), str(root), str(tmp_path / "out")).run_id

    first = run_id()
    assert run_id() == first
    with open(root / "eval" / "more.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "one more evaluation item, long enough to be indexed whole"}) + "\n")
    assert run_id() != first
