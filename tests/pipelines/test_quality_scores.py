"""train-scorer, then a run that scores and selects with it: on the bundled sample's real answers."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from hybridmix.transforms.scorer import DEFAULT_SCORER
from tests.builders import write_config, write_parquet
from tests.pipelines.test_cli import ROOT

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "data")


def _labelled_answers(path) -> pa.Table:
    """The sample's answers, labelled 1 when they hold a numbered or bulleted list: a property a
    scorer on word and layout features can learn, so held-out metrics must show it did."""
    answers = pq.read_table(os.path.join(EXAMPLES, "synthetic_alpaca_eval.parquet"),
                            columns=["id", "text", "generator", "prompt_id"])
    text = answers.column("text")
    listed = pc.or_(pc.match_substring_regex(text, r"(?m)^\s*(\d+\.|[-*]) "), pc.equal(text, "x"))
    table = answers.append_column("label", pc.cast(listed, pa.int8()))
    pq.write_table(table, path)
    return table


def test_train_a_scorer_then_score_and_select_with_it(tmp_path, capsys):
    labelled = _labelled_answers(tmp_path / "labelled.parquet")
    scorer = tmp_path / "scorer.npz"
    assert main(["train-scorer", str(tmp_path / "labelled.parquet"), "--label-column", "label",
                 "--group-column", "generator", "--holdout-column", "prompt_id", "--bits", "14",
                 "--output", str(scorer)]) == 0
    printed = capsys.readouterr()
    metrics = json.loads(printed.out)
    assert scorer.exists() and metrics["bytes"] == scorer.stat().st_size
    # Where the fitting is, on stderr: one line per held-out fit, then the final one.
    said = [line for line in printed.err.splitlines() if line.startswith("hybridmix train-scorer: ")]
    assert any("held-out fit 1 of " in line for line in said) and "final fit on all" in said[-1]
    assert metrics["held_out"]["auc"] > 0.8  # whole generators and prompts held out
    low, high = metrics["held_out"]["auc_interval_95"]
    assert 0.5 < low < metrics["held_out"]["auc"] < high
    assert "too few to measure this scorer" not in printed.err

    write_parquet(tmp_path / "in" / "human.parquet", pq.read_table(
        os.path.join(EXAMPLES, "human_wikipedia.parquet"), columns=["id", "text"]).slice(0, 400).to_pylist())
    pq.write_table(labelled.select(["id", "text", "generator"]), tmp_path / "in" / "answers.parquet")
    config = write_config(tmp_path / "in" / "mix.yaml", {
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
            {"name": "answers", "origin": "synthetic", "paths": ["answers.parquet"], "id_column": "id",
             "columns": {"generator": "generator"}},
        ],
        "quality": {"scorer": {"path": "../scorer.npz"}},
        "mixture": {"unit": "documents", "targets": {"human": 0.8, "synthetic": 0.2},
                    "selection": {"synthetic": "top"}},
    })
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    data = pq.read_table(out / "data")
    synthetic = data.filter(pc.equal(data.column("origin"), "synthetic"))
    human = data.filter(pc.equal(data.column("origin"), "human"))
    assert synthetic.num_rows > 0 and synthetic.column("quality_score").null_count == 0
    assert human.column("quality_score").null_count == human.num_rows  # origins: [synthetic]
    filtered = pq.read_table(out / "filtered")
    scored_filtered = filtered.filter(pc.equal(filtered.column("origin"), "synthetic"))
    assert scored_filtered.column("quality_score").null_count == 0

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quality"]["scorer"]["file"] == str(scorer)
    pool = manifest["quality"]["scores"]["answers"]
    counts = manifest["counts"]["answers"]
    assert pool["pool"]["documents"] == counts["selected"] + counts["not_selected"]
    assert pool["selected"]["documents"] == synthetic.num_rows
    assert pool["filtered"]["documents"] == scored_filtered.num_rows
    assert pool["selected"]["mean"] > pool["pool"]["mean"]
    selected_min = float(pc.min(synthetic.column("quality_score")).as_py())
    # "top" takes the best-scored answers first
    listed = set(labelled.filter(pc.equal(labelled.column("label"), 1)).column("id").to_pylist())
    share_listed = np.mean([d in listed for d in synthetic.column("doc_id").to_pylist()])
    assert share_listed > 0.9  # the scorer learned lists; top selection takes them
    assert selected_min > 0.5

    # Flagged answers competed with a lowered score (mixture.flag_penalty), and the ledger says so.
    ledger = pq.read_table(out / "ledger").to_pylist()
    detail = {r["doc_id"]: r["detail"] for r in ledger if r["source"] == "answers" and r["fate"] in
              ("selected", "not_selected")}
    mentioned = {d for d, text in detail.items() if "flagged (quality_flags), so ranked as if its score were 3 " in text}
    assert mentioned, "no answer of the sample was flagged: the check below would test nothing"
    selected = pq.read_table(out / "data", columns=["doc_id", "origin", "quality_flags"]).to_pylist()
    for row in selected:
        if row["origin"] == "synthetic":
            assert (row["doc_id"] in mentioned) == bool(row["quality_flags"]), row
    # The manifest counts them: every scored answer competed, so the pool's flagged are those the ledger notes.
    assert pool["pool"]["flagged"] == len(mentioned)
    assert pool["selected"]["flagged"] == sum(1 for r in selected if r["origin"] == "synthetic" and r["quality_flags"])
    assert manifest["mixture"]["sources"]["answers"]["flag_penalty"] == 3.0
    origins = manifest["mixture"]["origins"]
    assert (origins["synthetic"]["selection"], origins["human"]["selection"]) == ("top", "random")
    assert origins["synthetic"]["flag_penalty"] == 3.0 and origins["human"]["max_repeats"] == 1

    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "quality scores" in shown and "selected" in shown and "flagged" in shown


def test_train_scorer_weighs_one_model_per_judge_and_says_what_is_wrong(tmp_path, capsys):
    labelled = _labelled_answers(tmp_path / "labelled.parquet")
    judges = ["a" if i % 2 else "b" for i in range(labelled.num_rows)]
    pq.write_table(labelled.append_column("judge", pa.array(judges)), tmp_path / "judged.parquet")
    common = ["train-scorer", str(tmp_path / "judged.parquet"), "--label-column", "label", "--bits", "12",
              "--output", str(tmp_path / "scorer.npz")]
    assert main([*common, "--stratum-weight", "a=0.8"]) == 2  # no --stratum-column
    assert "--stratum-weight needs --stratum-column" in capsys.readouterr().err
    assert main([*common, "--stratum-column", "judge", "--stratum-weight", "c=1"]) == 2
    assert "judge has no value c (values present: a, b)" in capsys.readouterr().err
    assert main([*common, "--stratum-column", "judge", "--stratum-weight", "a=-1"]) == 2
    assert "weight above 0" in capsys.readouterr().err
    # Labels written as words ("True", "False") are a data error that says so, not an internal one.
    assert main([*common[:2], "--label-column", "judge", *common[4:]]) == 3
    assert "--label-column judge: type string; labels are booleans or numbers" in capsys.readouterr().err
    assert not (tmp_path / "scorer.npz").exists()

    assert main([*common, "--group-column", "generator", "--stratum-column", "judge",
                 "--stratum-weight", "a=0.8", "--stratum-weight", "b=0.2"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["held_out"]["auc"] > 0.8
    with np.load(tmp_path / "scorer.npz") as saved:
        meta = json.loads(str(saved["meta"]))
    assert meta["training"]["parameters"]["stratum_weights"] == {"a": 0.8, "b": 0.2}
    assert meta["training"]["label"]["stratum_weights"] == {"a": 0.8, "b": 0.2}


def test_train_scorer_skips_nan_labels_and_refuses_labels_that_never_differ(tmp_path, capsys):
    labelled = _labelled_answers(tmp_path / "labelled.parquet")
    # pandas writes a missing number as NaN: one of them zeroed every weight of the fit (exit 0).
    label = labelled.column("label").cast(pa.float64()).to_numpy().copy()
    label[::7] = np.nan
    pq.write_table(labelled.set_column(labelled.schema.get_field_index("label"), "label", pa.array(label)),
                   tmp_path / "nan.parquet")
    scorer = tmp_path / "scorer.npz"
    assert main(["train-scorer", str(tmp_path / "nan.parquet"), "--label-column", "label", "--bits", "12",
                 "--group-column", "generator", "--output", str(scorer)]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["skipped_rows"] == len(label[::7])
    assert f"{len(label[::7]):,} without text or label, or with a NaN label, skipped" in printed.err
    with np.load(scorer) as saved:
        assert np.isfinite(saved["hashed_weights"]).all() and np.abs(saved["hashed_weights"]).max() > 0

    same = labelled.set_column(labelled.schema.get_field_index("label"), "label",
                               pa.array(np.ones(labelled.num_rows, np.int8)))
    pq.write_table(same, tmp_path / "same.parquet")
    assert main(["train-scorer", str(tmp_path / "same.parquet"), "--label-column", "label", "--bits", "12",
                 "--output", str(tmp_path / "same.npz")]) == 3
    assert "every usable row has the label 1; a scorer learns from labels that differ" in capsys.readouterr().err
    assert not (tmp_path / "same.npz").exists()


def test_validate_checks_the_scorer_file_as_run_does(tmp_path, capsys):
    write_parquet(tmp_path / "answers.parquet", [{"id": f"a{i}", "text": f"answer number {i} here"} for i in range(5)])
    np.save(tmp_path / "weights.npy", np.zeros(3))
    (tmp_path / "notes.yaml").write_text("a: 1\n")
    with open(os.path.join(ROOT, "transforms", "scorers", DEFAULT_SCORER), "rb") as fh:
        bundled = fh.read()
    (tmp_path / "cut.npz").write_bytes(bundled[:len(bundled) // 2])  # a copy that stopped half way
    middle = len(bundled) // 2
    (tmp_path / "flipped.npz").write_bytes(bundled[:middle] + bytes(b ^ 0xFF for b in bundled[middle:middle + 64])
                                           + bundled[middle + 64:])
    for path, says in [("missing.npz", "No such file"), ("notes.yaml", "not a hybridmix scorer file"),
                       ("weights.npy", "not a hybridmix scorer file"), ("cut.npz", "damaged or incomplete scorer file"),
                       ("flipped.npz", "damaged or incomplete scorer file")]:
        config = write_config(tmp_path / "mix.yaml", {
            "corpora": [{"name": "answers", "origin": "synthetic", "paths": ["answers.parquet"], "id_column": "id"}],
            "quality": {"scorer": {"path": path}},
            "mixture": {"targets": {"synthetic": 1.0}},
        })
        assert main(["validate", config]) == 2, path
        err = capsys.readouterr().err
        assert "quality.scorer.path: cannot load" in err and says in err and "allow_pickle" not in err, err


def test_train_scorer_refuses_folds_and_holdout_that_measure_nothing(tmp_path, capsys):
    _labelled_answers(tmp_path / "labelled.parquet")
    common = ["train-scorer", str(tmp_path / "labelled.parquet"), "--label-column", "label", "--bits", "12",
              "--output", str(tmp_path / "scorer.npz")]
    # One fold trains on nothing while it is scored: "auc": NaN, which is not JSON, and a numpy warning.
    for folds in ("0", "1"):
        with pytest.raises(SystemExit) as exit_:
            main([*common, "--group-column", "generator", "--folds", folds])
        assert exit_.value.code == 2
        assert f"argument --folds: '{folds}' is not a whole number of 2 or more" in capsys.readouterr().err
    # Without groups the holdout column was ignored, and no held-out metrics came out.
    assert main([*common, "--holdout-column", "prompt_id"]) == 2
    assert "--holdout-column needs --group-column" in capsys.readouterr().err
    assert not (tmp_path / "scorer.npz").exists()


def test_train_scorer_says_why_one_group_gives_no_held_out_metrics(tmp_path, capsys):
    labelled = _labelled_answers(tmp_path / "labelled.parquet")
    one = labelled.filter(pc.equal(labelled.column("generator"), "gpt4_0613_verbose"))
    pq.write_table(one, tmp_path / "one.parquet")
    scorer = tmp_path / "scorer.npz"
    assert main(["-q", "train-scorer", str(tmp_path / "one.parquet"), "--label-column", "label", "--bits", "12",
                 "--group-column", "generator", "--holdout-column", "prompt_id", "--output", str(scorer)]) == 0
    printed = capsys.readouterr()
    why = "held-out metrics need 2 groups or more; the group column has 1"
    assert json.loads(printed.out)["held_out"] == {"groups": 1, "auc": None, "skipped": why}
    assert f"--group-column generator: {why}, so none are reported" in printed.err  # -q keeps warnings
    with np.load(scorer) as saved:
        assert json.loads(str(saved["meta"]))["metrics"]["held_out"]["skipped"] == why


def test_train_scorer_warns_when_too_few_labelled_rows_measure_nothing(tmp_path, capsys):
    labelled = _labelled_answers(tmp_path / "labelled.parquet")
    # Six answers of each of three generators, half of them labelled 1.
    rows = [r for g in ("gpt4_0613_verbose", "gpt4_0613_concise", "gemma-7b-it")
            for r in labelled.filter(pc.equal(labelled.column("generator"), g)).slice(0, 6).to_pylist()]
    for i, row in enumerate(rows):
        row["label"] = i % 2
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "tiny.parquet")
    assert main(["-q", "train-scorer", str(tmp_path / "tiny.parquet"), "--label-column", "label", "--bits", "12",
                 "--group-column", "generator", "--output", str(tmp_path / "tiny.npz")]) == 0
    printed = capsys.readouterr()
    held_out = json.loads(printed.out)["held_out"]
    low, high = held_out["auc_interval_95"]
    assert high - low > 0.4
    assert (f"held-out AUC {held_out['auc']:.3f} (95 % interval {low:.2f}-{high:.2f}) from 18 labelled rows: too few "
            "to measure this scorer") in printed.err  # a warning: -q keeps it


def test_train_scorer_names_a_missing_column_and_the_columns_present(tmp_path, capsys):
    _labelled_answers(tmp_path / "labelled.parquet")
    assert main(["train-scorer", str(tmp_path / "labelled.parquet"), "--label-column", "score", "--group-column",
                 "model", "--output", str(tmp_path / "scorer.npz")]) == 3
    err = capsys.readouterr().err
    assert ("labelled.parquet: no columns 'score' (--label-column), 'model' (--group-column); its columns: id, "
            "text, generator, prompt_id, label") in err


def test_train_scorer_takes_a_label_where_lower_is_better(tmp_path, capsys):
    # --label-range WORST BEST in either order: a rating where 1 is best need not be rewritten first.
    labelled = _labelled_answers(tmp_path / "labelled.parquet")
    flipped = pc.subtract(pa.scalar(1, pa.int8()), labelled.column("label"))
    pq.write_table(labelled.set_column(labelled.schema.get_field_index("label"), "label", flipped),
                   tmp_path / "flipped.parquet")
    common = ["--label-column", "label", "--bits", "12", "--group-column", "generator"]
    assert main(["train-scorer", str(tmp_path / "labelled.parquet"), *common, "--output", str(tmp_path / "a.npz")]) == 0
    assert main(["train-scorer", str(tmp_path / "flipped.parquet"), *common, "--label-range", "1", "0",
                 "--output", str(tmp_path / "b.npz")]) == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert np.abs(a["hashed_weights"]).max() > 0
        np.testing.assert_allclose(a["hashed_weights"], b["hashed_weights"], rtol=1e-6, atol=1e-9)
    capsys.readouterr()
    assert main(["train-scorer", str(tmp_path / "labelled.parquet"), *common, "--label-range", "1", "1",
                 "--output", str(tmp_path / "c.npz")]) == 2
    assert "WORST and BEST must differ" in capsys.readouterr().err
