"""`hybridmix plan`: quotas and feasibility from metadata and a sample, and `run` refusing a mixture
that even every input row could not fill, before it runs anything."""

import json
import os

import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from tests.builders import write_parquet
from tests.pipelines.test_cli import ROOT, _config, _corpus


def test_plan_estimates_quotas_and_says_feasible(tmp_path, capsys):
    _corpus(tmp_path)
    config = _config(tmp_path)
    assert main(["plan", config]) == 0
    text = capsys.readouterr().out
    assert "limiting source:" in text and "feasible by the estimate" in text
    corpora, plan = text.split("plan by the estimate (tokens)", 1)
    rows = {line.split()[0]: line.split() for line in corpora.splitlines() if line.startswith(("wiki ", "chat "))}
    assert rows["wiki"][1:4] == ["human", "2", "30"] and rows["chat"][1:4] == ["synthetic", "1", "48"]
    shares = {line.split()[0]: line.split()[4] for line in plan.splitlines() if line.startswith(("wiki ", "chat "))}
    assert shares == {"wiki": "60.00%", "chat": "40.00%"}

    assert main(["plan", config, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    corpora = {c["name"]: c for c in plan["corpora"]}
    # Every sampled text counted as the run counts it: the estimate is of the right size.
    assert corpora["wiki"]["sampled_rows"] == 30 and corpora["chat"]["sampled_rows"] == 47  # one null text
    assert 30 * 60 < corpora["wiki"]["estimated_tokens"] < 30 * 200
    assert plan["problem"] is None and plan["certainly_infeasible"] is None
    assert {s["source"]: s["share"] for s in plan["sources"]} == {"wiki": 0.6, "chat": 0.4}
    assert plan["limiting_source"] in ("wiki", "chat") and plan["total_units"] > 0


def test_a_mixture_no_data_can_fill_fails_in_plan_and_before_run_starts(tmp_path, capsys):
    _corpus(tmp_path)
    config = _config(tmp_path, unit="documents", total_documents=10_000)
    assert main(["plan", config]) == 5
    assert "certainly infeasible, even if every row were kept: source 'chat'" in capsys.readouterr().out
    assert main(["validate", config]) == 5  # validate checks what run checks before it starts
    assert "even if every input row were kept" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 5
    err = capsys.readouterr().err
    assert "even if every input row were kept; nothing was run" in err
    assert not out.exists()


def test_an_origin_of_files_without_rows_is_certainly_infeasible(tmp_path, capsys):
    """A file of no rows still stores a few bytes for its text column: they are no tokens."""
    _corpus(tmp_path)
    answers = tmp_path / "in" / "synth" / "answers.parquet"
    pq.write_table(pq.read_table(answers).slice(0, 0), answers)
    config = _config(tmp_path)
    assert main(["plan", config]) == 5
    assert "sources (chat) have no rows in their input files" in capsys.readouterr().out
    assert main(["validate", config]) == 5
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 5
    assert "no rows in their input files (even if every input row were kept; nothing was run)" \
        in capsys.readouterr().err
    assert not out.exists()


def test_the_bound_allows_the_estimates_tokens_per_byte(tmp_path, capsys):
    """The default estimate counts Thaana (Dhivehi; a script it does not name) at 2.9 tokens per 2-byte
    character: a mixture that needs more tokens than the text has bytes can still be filled, and was
    refused as certainly infeasible (the bound counted a token per byte)."""
    _corpus(tmp_path)
    verse = "ހުރިހާ އިންސާނުންވެސް ދުނިޔެއަށް އުފަންވަނީ، މިނިވަންކަމުގައި، ހަމަހަމަ ޙައްޤުތަކަކާއި"
    write_parquet(tmp_path / "in" / "human" / "part-0.parquet",
                  [{"id": f"dv{i}", "text": f"{verse} {verse} ({i})", "lic": "CC0"} for i in range(40)])
    os.remove(tmp_path / "in" / "human" / "part-1.parquet")
    config = _config(tmp_path, targets={"human": 0.5, "synthetic": 0.5})
    assert main(["plan", config, "--json"]) == 0
    wiki = next(c for c in json.loads(capsys.readouterr().out)["corpora"] if c["name"] == "wiki")
    assert wiki["estimated_tokens"] > 1.3 * wiki["text_bytes"]
    between = _config(tmp_path, targets={"human": 0.5, "synthetic": 0.5},
                      total_tokens=wiki["text_bytes"] + wiki["estimated_tokens"])  # human: bytes < quota < tokens
    assert main(["plan", between, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["certainly_infeasible"] is None
    beyond = _config(tmp_path, targets={"human": 0.5, "synthetic": 0.5}, total_tokens=10 * wiki["text_bytes"])
    assert main(["plan", beyond]) == 5
    assert "tokens at most, counting 3.77 per byte of text" in capsys.readouterr().out


def test_plan_splits_sources_by_script_where_the_mixture_targets_scripts(capsys):
    """examples/multilingual.yaml wants 60 % Latin and 40 % Han script on the human side."""
    assert main(["plan", os.path.join(ROOT, "examples", "multilingual.yaml"), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    shares = {s["source"]: s["share"] for s in plan["sources"]}
    assert shares["debian_zh (script Hani)"] == pytest.approx(0.28)
    assert shares["wikipedia (script Latn)"] == pytest.approx(0.42)
    assert plan["certainly_infeasible"] is None


def test_a_budget_too_small_for_any_source_publishes_nothing(tmp_path, capsys):
    """One document at 50/50: every source's quota rounds to no document, and an empty output is no mixture."""
    _corpus(tmp_path)
    config = _config(tmp_path, unit="documents", total_documents=1, targets={"human": 0.5, "synthetic": 0.5})
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 5
    err = capsys.readouterr().err
    assert "the mixture selects no document: the budget (mixture.total_documents: 1) is too small" in err
    assert "wiki 0.50 documents" in err and "chat 0.50 documents" in err
    assert not out.exists()


def test_plan_from_metadata_only_does_not_call_a_mixture_in_tokens_infeasible(tmp_path, capsys):
    _corpus(tmp_path)
    config = _config(tmp_path)
    assert main(["plan", config, "--sample-rows", "0"]) == 0
    text = capsys.readouterr().out
    assert "no estimate in tokens with --sample-rows 0" in text and "infeasible" not in text
    assert main(["plan", config, "--sample-rows", "0", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["problem"] is None and all(s["estimated_tokens"] is None for s in plan["sources"])
    with pytest.raises(SystemExit) as info:
        main(["plan", config, "--sample-rows", "-5"])
    assert info.value.code == 2


@pytest.mark.parametrize("stored", ["dictionary", "large_binary", "bad_utf8", "null_file"])
def test_plan_samples_every_text_type_the_run_reads(tmp_path, capsys, stored):
    """`plan` ended with an internal error on text the run reads: a categorical column, large_binary,
    binary with a row that is not UTF-8 (a reject in the run, not sampled), a file of null texts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.builders import write_config

    texts = [f"text number {i} " + "word " * (20 + i) for i in range(30)]
    os.makedirs(tmp_path / "h")
    column = {"dictionary": pa.array(texts).dictionary_encode(),
              "large_binary": pa.array([t.encode() for t in texts], pa.large_binary()),
              "bad_utf8": pa.array([t.encode() if i != 5 else b"\xff" + t.encode() for i, t in enumerate(texts)]),
              "null_file": pa.array(texts)}[stored]
    pq.write_table(pa.table({"id": [f"h{i}" for i in range(30)], "text": column}), tmp_path / "h" / "a.parquet")
    if stored == "null_file":
        pq.write_table(pa.table({"id": [f"n{i}" for i in range(5)], "text": pa.nulls(5)}), tmp_path / "h" / "0.parquet")
    config = write_config(tmp_path / "c.yaml", {
        "corpora": [{"name": "h", "origin": "human", "paths": ["h/*.parquet"], "id_column": "id"}],
        "mixture": {"targets": {"human": 1.0}}})
    assert main(["plan", config, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["corpora"][0]["sampled_rows"] == (29 if stored == "bad_utf8" else 30)
