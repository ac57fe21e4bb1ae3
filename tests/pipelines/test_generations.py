"""Generational mixes: an earlier output read as corpora (`format: hybridmix`) and the carry-forward guard,
on real runs: a first mix from fixture Parquet, a second that reads it back with new data, a third."""

import glob
import json
import os
import shutil
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from tests.builders import words, write_config, write_parquet

GEN1_MIXTURE = {"targets": {"human": 0.6, "synthetic": 0.4}, "max_repeats": 2, "validation_fraction": 0.25}


def _gen1_inputs(root):
    human = [{"id": f"h{i:02d}", "text": words(100 + i, 60 + i * 3), "title": f"Title {i}",
              "link": f"https://example.org/{i}"} for i in range(24)]
    synth = [{"id": f"s{i:02d}", "text": words(1000 + i, 50 + i * 4), "model": f"m{i % 3}", "parent": f"h{i % 24:02d}",
              "gen": 1 + i % 2} for i in range(40)]
    write_parquet(root / "in1" / "human" / "part-0.parquet", human)
    write_parquet(root / "in1" / "synth" / "part-0.parquet", synth, row_group_size=16)
    return write_config(root / "in1" / "config.yaml", {
        "seed": 3,
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human/*.parquet"], "id_column": "id",
             "columns": {"url": "link"}, "defaults": {"license": "CC-BY-SA-4.0"}, "keep_columns": ["title"]},
            {"name": "chat", "origin": "synthetic", "paths": ["synth/*.parquet"], "id_column": "id",
             "columns": {"generator": "model", "parent_id": "parent", "generation": "gen"}},
        ],
        # The human side is the smaller: every human document goes out twice (upsampled copies in data/).
        "mixture": GEN1_MIXTURE,
        "quality": {"enabled": False},
        "output": {"rows_per_shard": 25, "row_group_rows": 8},
        "partitions": 3,
    })


def _carried(name, origin, path):
    return {"name": name, "origin": origin, "paths": [path], "format": "hybridmix"}


def _gen2_config(root, corpora=None, **mixture):
    new = [{"id": f"n{i:02d}", "text": words(5000 + i, 70), "model": "m9"} for i in range(20)]
    write_parquet(root / "in2" / "new" / "part-0.parquet", new)
    corpora = corpora if corpora is not None else [
        _carried("gen1_human", "human", "../gen1"), _carried("gen1_chat", "synthetic", "../gen1")]
    return write_config(root / "in2" / "config.yaml", {
        "seed": 4,
        "corpora": corpora + [{"name": "chat2", "origin": "synthetic", "paths": ["new/*.parquet"],
                               "id_column": "id", "columns": {"generator": "model"}}],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}, "guards": {"carry_forward": "../gen1"}, **mixture},
        "quality": {"enabled": False},
        "partitions": 3,
    })


def _table(out, folder="data"):
    return pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(os.path.join(str(out), folder, "*.parquet")))])


def _manifest(out):
    with open(os.path.join(str(out), "manifest.json"), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def generations(tmp_path_factory):
    root = tmp_path_factory.mktemp("generations")
    assert main(["run", _gen1_inputs(root), "--output", str(root / "gen1"), "-q"]) == 0
    assert main(["run", _gen2_config(root), "--output", str(root / "gen2"), "-q"]) == 0
    return root


def test_first_generation_has_copies_to_skip(generations):
    data = _table(generations / "gen1")
    repeats = Counter(zip(data.column("origin").to_pylist(), data.column("repeat").to_pylist()))
    assert repeats[("human", 1)] == repeats[("human", 0)] == 24
    assert len(_manifest(generations / "gen1")["outputs"]["data"]) > 1


def test_carried_rows_keep_their_provenance_and_name_their_earlier_row(generations):
    gen1, gen2 = generations / "gen1", generations / "gen2"
    earlier = {}
    for path in sorted(glob.glob(str(gen1 / "data" / "*.parquet"))):
        for row, record in enumerate(pq.read_table(path).to_pylist()):
            earlier[(path, row)] = record
    run1 = _manifest(gen1)["run_id"]
    carried = [r for r in _table(gen2).to_pylist() if r["source"] in ("gen1_human", "gen1_chat")]
    assert {r["source"] for r in carried} == {"gen1_human", "gen1_chat"}
    for record in carried:
        before = earlier[(os.path.join(generations / "in2", record["source_file"]), record["source_row"])]
        assert before["repeat"] == 0, record["source_file"]
        assert before["origin"] == record["origin"] == ("human" if record["source"] == "gen1_human" else "synthetic")
        for column in ("doc_id", "text", "generator", "generation", "parent_id", "license", "url", "content_hash"):
            assert record[column] == before[column], column
        meta = json.loads(record["meta"])
        assert meta.pop("carried_from") == [run1]
        assert meta == (json.loads(before["meta"]) if before["meta"] else {})
    human = [r for r in carried if r["origin"] == "human"]
    assert json.loads(human[0]["meta"])["title"].startswith("Title ")
    assert {r["license"] for r in human} == {"CC-BY-SA-4.0"}
    assert {r["generation"] for r in carried if r["origin"] == "synthetic"} == {1, 2}


def test_every_earlier_row_is_taken_once_skipped_as_a_copy_or_left_to_the_other_origin(generations):
    gen1, gen2 = generations / "gen1", generations / "gen2"
    data1 = _table(gen1)
    manifest = _manifest(gen2)
    entries = [i for i in manifest["inputs"] if i["format"] == "hybridmix"]
    by_source = {s: [i for i in entries if i["source"] == s] for s in ("gen1_human", "gen1_chat")}
    assert len(by_source["gen1_human"]) == len(by_source["gen1_chat"]) == len(_manifest(gen1)["outputs"]["data"])
    for entry in entries:
        c = entry["carried"]
        assert c["run_id"] == _manifest(gen1)["run_id"]
        assert c["taken"] + c["copies_skipped"] + c["other_origin"] == entry["rows"]
    repeat = data1.column("repeat").to_pylist()
    origin = data1.column("origin").to_pylist()
    for source, kind in (("gen1_human", "human"), ("gen1_chat", "synthetic")):
        taken = sum(i["carried"]["taken"] for i in by_source[source])
        assert taken == sum(1 for o, r in zip(origin, repeat) if o == kind and r == 0)
        assert sum(i["carried"]["copies_skipped"] for i in by_source[source]) == sum(1 for r in repeat if r > 0)
        # The rows read are the rows taken: what counts (and ledger/) account for.
        assert manifest["counts"][source]["read"] == taken
    ledger = _table(gen2, "ledger")
    lineage = Counter(zip(ledger.column("source_file").to_pylist(), ledger.column("source_row").to_pylist()))
    assert ledger.num_rows == manifest["totals"]["read"] == len(lineage)
    carried_rows = sum(1 for f, _ in lineage if "gen1" in f)
    assert carried_rows == sum(1 for r in repeat if r == 0)  # each earlier document once, by one corpus


def test_manifest_and_inspect_say_what_was_carried_and_what_is_new(generations, capsys):
    gen1, gen2 = generations / "gen1", generations / "gen2"
    run1 = _manifest(gen1)["run_id"]
    manifest = _manifest(gen2)
    carried = manifest["carried"]
    human, synthetic = carried["origins"]["human"], carried["origins"]["synthetic"]
    assert human["carried"]["documents"] == 24 and human["new"] == {"documents": 0, "tokens": 0}
    assert human["carried"]["by_run"][run1]["documents"] == 24
    sources = manifest["mixture"]["sources"]
    assert synthetic["carried"]["documents"] == sources["gen1_chat"]["selected_documents"] > 0
    assert synthetic["new"]["documents"] == sources["chat2"]["selected_documents"] > 0
    data = _table(gen2).to_pylist()
    assert synthetic["new"]["tokens"] == sum(r["tokens"] for r in data if r["source"] == "chat2" and r["repeat"] == 0)
    guard = carried["carry_forward"]
    earlier_human = [r for r in _table(gen1).to_pylist() if r["origin"] == "human" and r["repeat"] == 0]
    assert guard["human_documents"] == {"earlier": 24, "carried": 24, "min_ratio": 1.0}
    assert guard["human_tokens"]["earlier"] == guard["human_tokens"]["now"] == sum(r["tokens"] for r in earlier_human)
    report = (gen2 / "report.html").read_text(encoding="utf-8")
    assert "The report could not be built" not in report and "hybridmix" in report
    assert main(["inspect", str(gen2), "--rows", "0"]) == 0
    out = capsys.readouterr().out
    assert f"from run {run1}" in out
    assert "its human documents selected 24 of 24 (at least 1 x): passed" in out


def test_validate_and_plan_read_the_earlier_output(generations, capsys):
    config = str(generations / "in2" / "config.yaml")
    assert main(["validate", config]) == 0
    out = capsys.readouterr().out
    assert "gen1_human (human): " in out and "24 documents taken, 24 upsampled copies skipped" in out
    assert "guards.carry_forward: " in out and "holds 24 human documents" in out
    assert main(["plan", config, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    rows = {c["name"]: c["rows"] for c in plan["corpora"]}
    assert rows["gen1_human"] == 24 and rows["chat2"] == 20
    # Each corpus's share of the earlier text follows its own rows' lengths, not their number.
    earlier = [r for r in _table(generations / "gen1").to_pylist() if r["repeat"] == 0]
    for corpus in plan["corpora"]:
        origin = {"gen1_human": "human", "gen1_chat": "synthetic"}.get(corpus["name"])
        if origin:
            real = sum(len(r["text"].encode()) for r in earlier if r["origin"] == origin)
            assert abs(corpus["text_bytes"] - real) <= 0.02 * real, (corpus["name"], corpus["text_bytes"], real)


def test_a_third_generation_names_both_earlier_runs(generations):
    root = generations
    os.makedirs(root / "in3")
    config = write_config(root / "in3" / "config.yaml", {
        "corpora": [_carried("gen2_human", "human", "../gen2"), _carried("gen2_chat", "synthetic", "../gen2")],
        # gen2 is half human: a larger human share keeps every human document in (the guard checks it).
        "mixture": {"targets": {"human": 0.6, "synthetic": 0.4}, "guards": {"carry_forward": "../gen2"}},
        "quality": {"enabled": False},
    })
    assert main(["run", config, "--output", str(root / "gen3"), "-q"]) == 0
    runs = [_manifest(root / g)["run_id"] for g in ("gen1", "gen2")]
    human = [r for r in _table(root / "gen3").to_pylist() if r["origin"] == "human"]
    assert len(human) == 24
    assert all(json.loads(r["meta"])["carried_from"] == runs for r in human)


def test_guard_fails_before_anything_is_written_when_the_mix_drops_human_data(generations, capsys):
    root = generations
    # A budget that leaves out part of the earlier human documents: found when the mix is planned.
    config = _gen2_config(root, total_tokens=3000)
    out = root / "gen2-cut"
    assert main(["run", config, "--output", str(out), "-q"]) == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    tokens = _manifest(root / "gen2")["carried"]["carry_forward"]["human_tokens"]["earlier"]
    assert err.startswith("hybridmix: error: guards.carry_forward: the mixture holds ")
    assert f"human tokens (one copy of each document), fewer than 1 x the {tokens:,} of the earlier output" in err
    assert "lower guards.carry_forward.min_human_tokens" in err
    assert not out.exists()
    assert not [p for p in os.listdir(root) if p.endswith(".inprogress")]


def test_guard_fails_before_the_run_when_no_corpus_reads_the_earlier_human_documents(generations, capsys):
    root = generations
    write_parquet(root / "in2" / "fresh" / "part-0.parquet",
                  [{"id": f"f{i}", "text": words(7000 + i, 300)} for i in range(20)])
    fresh = {"name": "fresh", "origin": "human", "paths": ["fresh/*.parquet"], "id_column": "id"}
    config = _gen2_config(root, corpora=[fresh, _carried("gen1_chat", "synthetic", "../gen1")])
    out = root / "gen2-replaced"
    assert main(["run", config, "--output", str(out), "-q"]) == 4
    err = capsys.readouterr().err
    assert "guards.carry_forward: the mixture selects 0 of the 24 human documents of the earlier output" in err
    assert "the corpora read 0 of them" in err and "nothing was run" in err
    assert not out.exists()
    # With the documents' share lowered, the tokens of new human text may stand in for them.
    config = _gen2_config(root, corpora=[fresh, _carried("gen1_chat", "synthetic", "../gen1")],
                          guards={"carry_forward": {"path": "../gen1", "min_human_documents": 0}})
    assert main(["run", config, "--output", str(out), "-q"]) == 0
    guard = _manifest(out)["carried"]["carry_forward"]
    assert guard["human_documents"]["carried"] == 0 and guard["human_tokens"]["now"] > guard["human_tokens"]["earlier"]


def _run_expecting(root, corpora, code, capsys, **mixture):
    config = _gen2_config(root, corpora=corpora, **mixture)
    assert main(["run", config, "--output", str(root / "never"), "-q"]) == code
    assert not (root / "never").exists()
    return capsys.readouterr().err


def test_a_folder_that_is_not_a_published_output_is_refused(generations, capsys):
    root = generations
    write_parquet(root / "plain" / "data" / "part-0.parquet", [{"text": "x", "doc_id": "a"}])
    err = _run_expecting(root, [_carried("old", "human", "../plain")], 3, capsys)
    assert "corpora[0] (old): ../plain is not a published hybridmix output (no _SUCCESS" in err
    # A glob of outputs: an unfinished one among them is named, not left out.
    shutil.copytree(root / "gen1", root / "outputs" / "day1")
    shutil.copytree(root / "gen1", root / "outputs" / "day2")
    os.remove(root / "outputs" / "day2" / "_SUCCESS")
    err = _run_expecting(root, [_carried("old", "human", "../outputs/*")], 3, capsys)
    assert "../outputs/day2 is not a published hybridmix output (no _SUCCESS" in err
    err = _run_expecting(root, [_carried("old", "human", "../gen1")], 3, capsys,
                         guards={"carry_forward": "../outputs/day2"})
    assert "mixture.guards.carry_forward.path: ../outputs/day2 is not a published hybridmix output" in err
    # Published-looking, but its manifest lists a file that is not hybridmix data.
    plain = root / "plain" / "data" / "part-0.parquet"
    (root / "plain" / "_SUCCESS").write_text("x\n")
    (root / "plain" / "manifest.json").write_text(json.dumps({"run_id": "x", "outputs": {"data": [
        {"path": "data/part-0.parquet", "rows": 1, "size_bytes": os.path.getsize(plain)}]}}))
    err = _run_expecting(root, [_carried("old", "human", "../plain")], 3, capsys)
    assert "part-0.parquet: not a hybridmix data file (no column 'generation', 'generator'" in err


def test_an_earlier_output_whose_data_changed_is_refused(generations, capsys):
    root = generations
    shutil.copytree(root / "gen1", root / "changed")
    first = sorted(glob.glob(str(root / "changed" / "data" / "*.parquet")))[0]
    with open(first, "ab") as fh:
        fh.write(b"\0")
    err = _run_expecting(root, [_carried("old", "human", "../changed")], 3, capsys,
                         guards={"carry_forward": "../changed"})
    assert f"{os.path.relpath(first, root / 'changed')} is " in err
    assert "the file changed after the run published it" in err


def test_two_corpora_of_one_origin_cannot_read_one_output(generations, capsys):
    err = _run_expecting(generations, [_carried("a", "human", "../gen1"), _carried("b", "human", "../gen1")], 3,
                         capsys)
    assert "read by both corpus 'a' and corpus 'b', both of origin human" in err


def test_an_earlier_output_on_an_object_store_is_read_as_a_local_one_is(generations, tmp_path):
    from tests import s3
    from tests.pipelines.test_object_store import _cli

    root = generations
    with s3.s3_server() as endpoint:
        bucket = s3.Bucket(endpoint)
        first = _cli(endpoint, "run", root / "in1" / "config.yaml", "--output", bucket.url("mixes/gen1"), "-q")
        assert first.returncode == 0, first.stderr
        # A glob of outputs on the store: the folders holding a _SUCCESS.
        config = _gen2_config(root, corpora=[_carried("gen1_human", "human", bucket.url("mixes/gen*")),
                                             _carried("gen1_chat", "synthetic", bucket.url("mixes/gen1"))],
                              guards={"carry_forward": bucket.url("mixes/gen1")})
        second = _cli(endpoint, "run", config, "--output", tmp_path / "gen2", "-q")
        assert second.returncode == 0, second.stderr
    remote, local = _manifest(tmp_path / "gen2"), _manifest(root / "gen2")
    # The same figures; only the earlier output's name differs.
    as_local = json.loads(json.dumps(remote["carried"]).replace(bucket.url("mixes/gen1"), "../gen1"))
    assert as_local == local["carried"]
    assert {i["carried"]["output"] for i in remote["inputs"] if i.get("carried")} == {bucket.url("mixes/gen1")}
    assert all(i["path"].startswith(bucket.url("mixes/gen1/runs/")) for i in remote["inputs"] if i.get("carried"))
    other = ["source_file", "run_id", "config_digest"]  # the config names the earlier output by another path
    assert _table(tmp_path / "gen2").drop(other) == _table(root / "gen2").drop(other)
