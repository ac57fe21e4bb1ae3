"""Incremental runs: every output's index/, and `dedup.against` matching new documents against it."""

import glob
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash

from hybridmix.pipelines.cli import main
from hybridmix.schemas.records import INDEX_SCHEMA
from hybridmix.transforms import minhash as mh
from tests.builders import near_copy, words, write_config, write_parquet


def _folder(out, folder):
    return pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(str(out / folder / "*.parquet")))])


def _config(tmp_path, name, paths, **extra):
    return write_config(tmp_path / f"{name}.yaml", {
        "seed": 3,
        "corpora": [{"name": "chat", "origin": "synthetic", "paths": paths, "id_column": "id",
                     "columns": {"generator": "model"}}],
        "mixture": {"unit": "documents", "targets": {"synthetic": 1.0}},
        "output": {"rows_per_shard": 15},
        "partitions": 3,
        **extra,
    })


def _manifest(out):
    with open(out / "manifest.json", encoding="utf-8") as fh:
        return json.load(fh)


def write_days(tmp):
    """Day 1: 40 answers. Day 2: re-deliveries of day 1 under new ids (exact), light edits of day-1
    answers (near), 20 new answers, and one new answer delivered twice. Returns the configs and rows."""
    day1 = [{"id": f"d1-{i:02d}", "text": words(500 + i, 60 + i), "model": f"m{i % 4}"} for i in range(40)]
    again = [{"id": f"d2-again-{i}", "text": "  " + day1[i]["text"].upper(), "model": "m9"} for i in range(8)]
    edited = [{"id": f"d2-edit-{i}", "text": near_copy(day1[10 + i]["text"]), "model": "m9"} for i in range(6)]
    new = [{"id": f"d2-new-{i:02d}", "text": words(900 + i, 70 + i), "model": "m8"} for i in range(20)]
    twice = [{"id": "d2-twice", "text": new[0]["text"] + " ", "model": "m8"}]
    write_parquet(tmp / "day1" / "part-0.parquet", day1)
    write_parquet(tmp / "day2" / "part-0.parquet", again + edited + new + twice, row_group_size=10)
    configs = (_config(tmp, "day1", ["day1/*.parquet"]),
               _config(tmp, "day2", ["day2/*.parquet"], dedup={"against": ["out1"]}))
    return configs, (day1, again, edited, new)


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("incremental")
    (day1_config, day2_config), rows = write_days(tmp)
    out1, out2 = tmp / "out1", tmp / "out2"
    assert main(["run", day1_config, "--output", str(out1), "-q"]) == 0
    assert main(["run", day2_config, "--output", str(out2), "-q"]) == 0
    return (tmp, out1, out2, *rows)


def test_index_holds_every_published_document_with_its_sketch(days):
    _, out1, _, day1, *_ = days
    index, data = _folder(out1, "index"), _folder(out1, "data")
    assert index.schema == INDEX_SCHEMA
    assert sorted(index.column("doc_id").to_pylist()) == sorted(set(data.column("doc_id").to_pylist()))
    manifest = _manifest(out1)
    assert sum(f["rows"] for f in manifest["outputs"]["index"]) == index.num_rows
    near = manifest["dedup"]["near"]
    texts = {r["id"]: r["text"] for r in day1}
    hashes = dict(zip(data.column("doc_id").to_pylist(), data.column("content_hash").to_pylist()))
    for row in index.to_pylist():
        assert row["content_hash"] == hashes[row["doc_id"]]
        assert row["run_id"] == manifest["run_id"]
        # What datasketch computes for the same text: its low bytes, and band keys of its signature.
        ref = MinHash(num_perm=near["num_perm"], seed=near["seed"], hashfunc=mh.shingle_hash32)
        ref.update_batch(mh.document_shingles(texts[row["doc_id"]], near["ngram"]))
        sig = np.asarray(ref.hashvalues, np.uint32)
        assert row["minhash8"] == (sig & 0xFF).astype(np.uint8).tobytes()
        assert row["bands"] == mh.band_keys(sig[None, :], near["bands"], near["rows"])[0].tolist()


def test_new_documents_that_repeat_an_earlier_output_are_removed(days):
    _, out1, out2, day1, again, edited, new = days
    dups = {r["doc_id"]: r for r in _folder(out2, "duplicates").to_pylist()}
    earlier = _manifest(out1)["run_id"]
    for i, row in enumerate(again):
        dup = dups[row["id"]]
        assert (dup["kind"], dup["kept_doc_id"], dup["kept_run_id"]) == ("exact_prior", day1[i]["id"], earlier)
        assert dup["similarity"] == 1.0
    for i, row in enumerate(edited):
        dup = dups[row["id"]]
        assert (dup["kind"], dup["kept_doc_id"], dup["kept_run_id"]) == ("near_prior", day1[10 + i]["id"], earlier)
        assert 0.7 < dup["similarity"] < 1.0
    # This run's own duplicates are still found, and kept by this run.
    assert (dups["d2-twice"]["kind"], dups["d2-twice"]["kept_doc_id"]) == ("exact", "d2-new-00")
    assert dups["d2-twice"]["kept_run_id"] == _manifest(out2)["run_id"]
    assert sorted(_folder(out2, "data").column("doc_id").to_pylist()) == sorted(r["id"] for r in new)


def test_manifest_and_ledger_name_the_earlier_run(days, capsys):
    _, out1, out2, _, again, edited, _ = days
    manifest = _manifest(out2)
    earlier = _manifest(out1)
    assert manifest["dedup"]["against"] == [
        {"path": "out1", "run_id": earlier["run_id"], "indexed": 40, "match": "exact and near"}]
    assert manifest["dedup"]["stats"]["prior_duplicates"] == {
        "exact_prior": {"chat": len(again)}, "near_prior": {"chat": len(edited)}}
    assert manifest["totals"]["exact_duplicates"] == len(again) + 1
    assert manifest["totals"]["near_duplicates"] == len(edited)
    # The run summary (also `hybridmix inspect`) says what the earlier output removed.
    assert main(["inspect", str(out2)]) == 0
    assert (f"matched against 1 earlier output(s) (40 documents indexed): {len(again)} exact and {len(edited)} near "
            "duplicates of their documents removed") in capsys.readouterr().out
    ledger = {r["doc_id"]: r for r in _folder(out2, "ledger").to_pylist()}
    assert ledger["d2-again-0"]["fate"] == "duplicate"
    assert f"published by earlier run {earlier['run_id']}" in ledger["d2-again-0"]["detail"]


def test_documents_delivered_again_are_explained_and_counted_in_the_published_cluster(days, tmp_path, capsys):
    """A day-1 document delivered again under its own id is a duplicate of the published one: explain
    points at the earlier run, not at this run's row of that id (which is the duplicate itself)."""
    tmp, out1, _, day1, *_ = days
    write_parquet(tmp_path / "day3" / "part-0.parquet", [day1[3], dict(day1[3], id="d3-copy")] + [
        {"id": f"d3-{i}", "text": words(1300 + i, 60), "model": "m7"} for i in range(10)])
    config = _config(tmp_path, "day3", ["day3/*.parquet"], dedup={"against": [str(out1)]})
    assert main(["run", config, "--output", str(tmp_path / "out3"), "-q"]) == 0
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "out3"), day1[3]["id"]]) == 0
    told = capsys.readouterr().out
    assert "exact_prior duplicate of d1-03" in told and "published by earlier run" in told
    assert "kept document" not in told
    # Both copies delivered again are in the published document's cluster: it, and the two of them.
    removed = _folder(tmp_path / "out3", "duplicates").to_pylist()
    assert sorted((r["doc_id"], r["kind"], r["cluster"], r["cluster_size"]) for r in removed) == [
        ("d1-03", "exact_prior", "d1-03", 3), ("d3-copy", "exact_prior", "d1-03", 3)]


def test_the_run_id_follows_the_earlier_outputs(days, tmp_path, monkeypatch):
    tmp, out1, out2, *_ = days
    alone = tmp_path / "alone"
    assert main(["run", _config(tmp, "day2-alone", ["day2/*.parquet"]), "--output", str(alone), "-q"]) == 0
    assert _manifest(alone)["run_id"] != _manifest(out2)["run_id"]
    # Without the earlier output, the re-deliveries are new documents.
    assert _manifest(alone)["totals"]["selected"] > _manifest(out2)["totals"]["selected"]
    # --against names it from the command line (relative to the shell's folder): the same run as out2.
    monkeypatch.chdir(tmp_path)
    again = tmp_path / "again"
    assert main(["run", _config(tmp, "day2-alone", ["day2/*.parquet"]), "--output", str(again), "-q",
                 "--against", os.path.relpath(out1, tmp_path)]) == 0
    assert _manifest(again)["dedup"]["stats"]["prior_duplicates"] == _manifest(out2)["dedup"]["stats"]["prior_duplicates"]


def test_outputs_that_cannot_be_matched_are_config_errors(days, capsys):
    tmp, *_ = days
    (tmp / "not-an-output").mkdir()
    cases = [
        ({"dedup": {"against": ["not-an-output"]}}, "not a published hybridmix output"),
        ({"dedup": {"against": ["out1"], "near": {"num_perm": 128}}}, "num_perm 256 (this run: 128)"),
        ({"dedup": {"against": ["bad-out"]}}, "this run's own output"),
    ]
    assert main(["run", _config(tmp, "first", ["day1/*.parquet"]), "--output", str(tmp / "bad-out"), "-q"]) == 0
    for (extra, message), code in zip(cases, (3, 2, 2)):
        capsys.readouterr()
        config = _config(tmp, "bad", ["day2/*.parquet"], **extra)
        assert main(["run", config, "--output", str(tmp / "bad-out"), "-q"]) == code
        assert message in capsys.readouterr().err


def test_without_an_index_an_output_cannot_be_matched(days, capsys):
    tmp, *_ = days
    plain = tmp / "plain"
    config = _config(tmp, "noindex", ["day1/*.parquet"], output={"rows_per_shard": 15, "index": False})
    assert main(["run", config, "--output", str(plain), "-q"]) == 0
    assert not (plain / "index").exists() and not _manifest(plain)["outputs"]["index"]
    capsys.readouterr()
    config = _config(tmp, "against-plain", ["day2/*.parquet"], dedup={"against": ["plain"]})
    assert main(["run", config, "--output", str(tmp / "against-plain-out"), "-q"]) == 2
    assert "has no index/" in capsys.readouterr().err


def test_an_index_file_missing_or_changed_stops_the_run_before_it_reads(days, tmp_path, capsys):
    tmp, out1, *_ = days
    damaged = tmp_path / "damaged"
    shutil.copytree(out1, damaged)
    index = sorted((damaged / "index").iterdir())
    config = _config(tmp, "against-damaged", ["day2/*.parquet"], dedup={"against": [str(damaged)]})
    whole = index[0].read_bytes()
    # Damaged in place, the same size (the plan checks sizes): the read names the file, exit 3.
    index[0].write_bytes(whole[:len(whole) - 40] + b"\xff" * 32 + whole[-8:])
    assert main(["run", config, "--output", str(tmp_path / "o0"), "-q"]) == 3
    assert f"{index[0]}: this index file of an earlier output cannot be read (" in capsys.readouterr().err
    index[0].write_bytes(whole + b"changed")
    capsys.readouterr()
    assert main(["run", config, "--output", str(tmp_path / "o1"), "-q"]) == 3
    assert f"{index[0].relative_to(damaged)} is {index[0].stat().st_size:,} bytes, its manifest says" in \
        capsys.readouterr().err
    assert main(["validate", config]) == 3  # validate checks what run checks before it starts
    assert "its manifest says" in capsys.readouterr().err
    shutil.rmtree(damaged / "index")
    assert main(["run", config, "--output", str(tmp_path / "o2"), "-q"]) == 3
    assert "is listed in its manifest but missing; its index is incomplete" in capsys.readouterr().err
    assert not any((tmp_path / o).exists() for o in ("o0", "o1", "o2"))
    assert main(["validate", _config(tmp, "against-out1", ["day2/*.parquet"], dedup={"against": [str(out1)]})]) == 0
    assert "documents indexed, matched exactly and near" in capsys.readouterr().out


def test_an_earlier_output_on_an_object_store_is_matched_as_a_local_one_is(days, tmp_path):
    from tests import s3
    from tests.pipelines.test_object_store import _cli

    tmp, _, out2, *_ = days
    with s3.s3_server() as endpoint:
        bucket = s3.Bucket(endpoint)
        first = _cli(endpoint, "run", tmp / "day1.yaml", "--output", bucket.url("daily/day1"), "-q")
        assert first.returncode == 0, first.stderr
        config = _config(tmp, "day2-s3", ["day2/*.parquet"], dedup={"against": [bucket.url("daily/day1")]})
        second = _cli(endpoint, "run", config, "--output", tmp_path / "day2", "-q")
        assert second.returncode == 0, second.stderr
    remote, local = _manifest(tmp_path / "day2"), _manifest(out2)
    assert remote["dedup"]["stats"]["prior_duplicates"] == local["dedup"]["stats"]["prior_duplicates"]
    assert remote["dedup"]["against"][0]["path"] == bucket.url("daily/day1")
    def dups(out, run_id):
        rows = _folder(out, "duplicates").select(["doc_id", "kept_doc_id", "kind", "similarity", "kept_run_id"])
        # The two runs' own ids differ (their configs name the earlier output differently).
        return sorted((r | {"kept_run_id": "this run" if r["kept_run_id"] == run_id else r["kept_run_id"]}
                       for r in rows.to_pylist()), key=str)

    assert dups(tmp_path / "day2", remote["run_id"]) == dups(out2, local["run_id"])


def _replaced(text: str, positions: range, tag: str) -> str:
    """The text with the words at `positions` replaced by words found nowhere else."""
    parts = text.split(" ")
    for i in positions:
        parts[i] = f"{tag}{i}"
    return " ".join(parts)


def test_a_chain_through_a_removed_document_leads_to_the_published_one(tmp_path):
    """Day 3 copies a day-2 edit of a day-1 text closely, the day-1 text itself only loosely: one run
    over all three days clusters the three, so the incremental run must remove it too."""
    origin = words(4242, 500)
    step1 = _replaced(origin, range(20, 480, 52), "one")  # 9 words: Jaccard about 0.83 to the original
    step2 = _replaced(step1, range(45, 480, 52), "two")  # 9 more: about 0.83 to step1, 0.69 to the original
    write_parquet(tmp_path / "day1" / "part-0.parquet", [{"id": "c-0", "text": origin, "model": "m7"}])
    own = _replaced(words(78, 300), range(100, 300, 100), "own")  # about 0.95 to new-2: removed by day 2 itself
    write_parquet(tmp_path / "day2" / "part-0.parquet", [{"id": "c-1", "text": step1, "model": "m7"},
                                                         {"id": "new-2", "text": words(78, 300), "model": "m7"},
                                                         {"id": "new-2-edit", "text": own, "model": "m7"}])
    write_parquet(tmp_path / "day3" / "part-0.parquet", [{"id": "c-2", "text": step2, "model": "m7"},
                                                         {"id": "c-1-again", "text": step1.upper(), "model": "m7"},
                                                         {"id": "own-again", "text": own, "model": "m7"},
                                                         {"id": "fresh", "text": words(77, 90), "model": "m7"}])
    outs = [tmp_path / f"out{d}" for d in (1, 2, 3)]
    for day, out in enumerate(outs, start=1):
        against = {"dedup": {"against": [str(o) for o in outs[:day - 1]]}}
        assert main(["run", _config(tmp_path, f"day{day}", [f"day{day}/*.parquet"], **against),
                     "--output", str(out), "-q"]) == 0
    first = _manifest(outs[0])["run_id"]
    indexed = {r["doc_id"]: r for r in _folder(outs[1], "index").to_pylist()}
    assert (indexed["c-1"]["kept_doc_id"], indexed["c-1"]["kept_run_id"]) == ("c-0", first)
    removed = {r["doc_id"]: r for r in _folder(outs[1], "duplicates").to_pylist()}
    assert sorted(removed) == ["c-1", "new-2-edit"]
    assert removed["new-2-edit"]["kind"] == "near" and indexed["new-2-edit"]["kept_doc_id"] == "new-2"
    for doc in removed:
        assert 0.7 < indexed[doc]["kept_similarity"] == removed[doc]["similarity"] < 1.0
    assert indexed["new-2"]["kept_similarity"] is None
    assert _folder(outs[1], "data").column("doc_id").to_pylist() == ["new-2"]
    dups = {r["doc_id"]: r for r in _folder(outs[2], "duplicates").to_pylist()}
    assert (dups["c-2"]["kind"], dups["c-2"]["kept_doc_id"], dups["c-2"]["kept_run_id"]) == (
        "near_prior", "c-0", first)
    # An exact copy of the removed day-2 text is as far from the published day-1 text as that was.
    assert (dups["c-1-again"]["kind"], dups["c-1-again"]["kept_doc_id"], dups["c-1-again"]["kept_run_id"]) == (
        "exact_prior", "c-0", first)
    assert dups["c-1-again"]["similarity"] == removed["c-1"]["similarity"]
    detail = {r["doc_id"]: r["detail"] for r in _folder(outs[2], "ledger").to_pylist()}["c-1-again"]
    assert detail.startswith("exact_prior duplicate of c-0 (an exact copy of one of its near duplicates; estimated")
    assert (dups["own-again"]["kind"], dups["own-again"]["kept_doc_id"], dups["own-again"]["kept_run_id"]) == (
        "exact_prior", "new-2", _manifest(outs[1])["run_id"])
    assert dups["own-again"]["similarity"] == removed["new-2-edit"]["similarity"]
    assert _folder(outs[2], "data").column("doc_id").to_pylist() == ["fresh"]
    # Against day 1 alone, the loose copy is new.
    alone = tmp_path / "out3-alone"
    assert main(["run", _config(tmp_path, "day3-alone", ["day3/*.parquet"], dedup={"against": [str(outs[0])]}),
                 "--output", str(alone), "-q"]) == 0
    assert sorted(_folder(alone, "data").column("doc_id").to_pylist()) == ["c-2", "fresh", "own-again"]
    # An index written before kept_similarity existed is still read: its removed documents' exact
    # copies are reported as identical to the published one, as then.
    older = tmp_path / "out2-older"
    shutil.copytree(outs[1], older)
    manifest = _manifest(older)
    for entry in manifest["outputs"]["index"]:
        path = older / entry["path"]
        pq.write_table(pq.read_table(path).drop_columns(["kept_similarity"]), path)
        entry["size_bytes"] = path.stat().st_size
    (older / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    out = tmp_path / "out3-older"
    assert main(["run", _config(tmp_path, "day3-older", ["day3/*.parquet"],
                                dedup={"against": [str(outs[0]), str(older)]}), "--output", str(out), "-q"]) == 0
    dups = {r["doc_id"]: r for r in _folder(out, "duplicates").to_pylist()}
    assert [(dups[d]["kind"], dups[d]["similarity"]) for d in ("c-1-again", "own-again")] == [("exact_prior", 1.0)] * 2
    assert dups["c-2"]["kind"] == "near_prior"


def test_an_output_hashed_before_ignorable_characters_were_left_out_is_matched_with_a_warning(days, tmp_path,
                                                                                              capsys):
    tmp, out1, *_ = days
    older = tmp_path / "older"
    shutil.copytree(out1, older)
    manifest = _manifest(older)
    manifest["dedup"]["exact"]["key"] = "blake2b-128 of NFKD-normalized, lowercased, whitespace-collapsed text"
    (older / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    config = _config(tmp, "against-older", ["day2/*.parquet"], dedup={"against": [str(older)]})
    capsys.readouterr()
    assert main(["validate", config]) == 0
    assert "its documents that hold them are matched by near dedup only" in capsys.readouterr().err
    assert main(["validate", _config(tmp, "against-out1", ["day2/*.parquet"], dedup={"against": [str(out1)]})]) == 0
    assert "near dedup only" not in capsys.readouterr().err


@pytest.mark.parametrize("origins", [None, ["synthetic"]])
def test_a_human_corpus_read_every_day_stays_in_the_mix_when_only_synthetic_is_matched(tmp_path, origins, capsys):
    """Each day reads the same human corpus and a new synthetic delivery. Matched against the first
    day, the human documents are all removed as published (the default); with against_origins
    [synthetic] they are all in the second day's mix, and the synthetic repeats still go."""
    human = [{"id": f"h{i:02d}", "text": words(3000 + i, 60 + i)} for i in range(30)]
    day1 = [{"id": f"a{i:02d}", "text": words(4000 + i, 60 + i), "model": "m"} for i in range(30)]
    day2 = [{"id": f"b{i:02d}", "text": words(5000 + i, 60 + i), "model": "m"} for i in range(30)]
    day2 += [{"id": f"b-again-{i}", "text": day1[i]["text"], "model": "m"} for i in range(5)]
    write_parquet(tmp_path / "human.parquet", human)
    write_parquet(tmp_path / "day1.parquet", day1)
    write_parquet(tmp_path / "day2.parquet", day2)

    def config(name, day, **dedup):
        return write_config(tmp_path / f"{name}.yaml", {
            "corpora": [{"name": "wiki", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
                        {"name": "chat", "origin": "synthetic", "paths": [day], "id_column": "id",
                         "columns": {"generator": "model"}}],
            "mixture": {"unit": "documents", "targets": {"human": 0.5, "synthetic": 0.5}},
            "dedup": dedup,
        })

    assert main(["run", config("day1", "day1.parquet"), "--output", str(tmp_path / "out1"), "-q"]) == 0
    dedup = {"against": ["out1"]} if origins is None else {"against": ["out1"], "against_origins": origins}
    code = main(["run", config("day2", "day2.parquet", **dedup), "--output", str(tmp_path / "out2"), "-q"])
    if origins is None:
        assert code == 5  # every human document was published by day 1: no human share is left
        assert "which with dedup.against includes what earlier outputs published" in capsys.readouterr().err
        return
    assert code == 0
    manifest = _manifest(tmp_path / "out2")
    assert manifest["config"]["dedup"]["against_origins"] == ["synthetic"]
    prior = _folder(tmp_path / "out2", "duplicates").to_pylist()
    assert sorted(r["doc_id"] for r in prior if r["kind"] == "exact_prior") == [f"b-again-{i}" for i in range(5)]
    data = _folder(tmp_path / "out2", "data")
    assert {d for d in data.column("doc_id").to_pylist() if d.startswith("h")} == {r["id"] for r in human}
