"""Text in every language end to end: filters, near-dedup, the script column, mixing by script, tokens."""

import hashlib
import json
import os
import re

import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from hybridmix.pipelines.report import display_width
from tests.builders import write_config, write_parquet
from tests.multilingual import ANSWERS, NOT_REFUSALS, PARAGRAPHS, REFUSALS, REFUSALS_BY_LANGUAGE, edited

EDITED = ("zh", "ja", "ko", "th")


def _read(out, folder):
    path = os.path.join(out, folder)
    return pq.read_table(path).to_pylist() if os.path.isdir(path) else []


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilingual")
    human, copies = [], {}
    for lang, texts in PARAGRAPHS.items():
        for i, text in enumerate(texts):
            human.append({"id": f"{lang}-{i}", "text": text})
            if lang in EDITED:
                human.append({"id": f"{lang}-{i}-copy", "text": edited(text)})
                copies[f"{lang}-{i}-copy"] = f"{lang}-{i}"
    answers = [{"id": f"refusal-{i}", "text": t} for i, t in enumerate(REFUSALS)]
    answers += [{"id": f"refusal-{lang}-{i}", "text": t}
                for lang, texts in REFUSALS_BY_LANGUAGE.items() for i, t in enumerate(texts)]
    answers += [{"id": f"answer-{i}", "text": t} for i, t in enumerate(ANSWERS)]
    answers += [{"id": f"not-refusal-{i}", "text": t} for i, t in enumerate(NOT_REFUSALS)]
    write_parquet(root / "human.parquet", human)
    write_parquet(root / "answers.parquet", answers)
    config = write_config(root / "mix.yaml", {
        "corpora": [
            {"name": "pages", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
            {"name": "answers", "origin": "synthetic", "paths": ["answers.parquet"], "id_column": "id"},
        ],
        "quality": {"scorer": {"enabled": False}},
        # The answers are few: repeat them so that every human paragraph fits in the mix, and every
        # answer the filters keep is selected.
        "mixture": {"unit": "documents", "targets": {"human": 0.3, "synthetic": 0.7},
                    "sources": {"answers": {"max_repeats": 10}}},
    })
    out = str(root / "out")
    assert main(["run", config, "--output", out]) == 0
    return out, copies


def test_clean_paragraphs_of_every_script_pass_the_default_filters(run):
    out, _ = run
    assert [r["doc_id"] for r in _read(out, "filtered") if r["source"] == "pages"] == []


def test_refusals_in_every_language_are_filtered_and_look_alikes_kept(run):
    out, _ = run
    dropped = {r["doc_id"]: r["filter"] for r in _read(out, "filtered") if r["source"] == "answers"}
    refusals = [f"refusal-{i}" for i in range(len(REFUSALS))]
    refusals += [f"refusal-{lang}-{i}" for lang, texts in REFUSALS_BY_LANGUAGE.items() for i in range(len(texts))]
    assert dropped == {doc_id: "refusal_v8" for doc_id in refusals}  # and none of the not-refusal-* answers


def test_near_copies_without_spaces_are_clustered_with_their_original(run):
    out, copies = run
    near = {r["doc_id"]: r["kept_doc_id"] for r in _read(out, "duplicates") if r["kind"] == "near"}
    assert near == copies


def test_every_record_carries_its_script_and_the_manifest_counts_them(run):
    out, _ = run
    rows = _read(out, "data")
    script = {r["doc_id"]: r["script"] for r in rows}
    expected = {"zh": "Hani", "ja": "Jpan", "ko": "Hang", "th": "Thai", "ar": "Arab", "en": "Latn", "zh-en": "Hani"}
    for lang, code in expected.items():
        for i in range(len(PARAGRAPHS[lang])):
            assert script[f"{lang}-{i}"] == code
    kept = {f"answer-{i}" for i in range(len(ANSWERS))} | {f"not-refusal-{i}" for i in range(len(NOT_REFUSALS))}
    assert kept <= set(script)  # every answer the filters keep is in the mix
    assert script["answer-2"] == "Jpan"
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    by_script = manifest["mixture"]["scripts"]["human"]
    for code in ("Hani", "Jpan", "Hang", "Thai", "Arab", "Latn"):
        assert by_script[code]["selected_documents"] == sum(
            1 for r in rows if r["script"] == code and r["origin"] == "human")
        assert by_script[code]["written_rows"] == by_script[code]["selected_documents"]  # no repeats
        assert by_script[code]["target_fraction"] is None  # no script targets in this run


def _script_corpus(root, ja: int = 5):
    rows = [{"id": f"zh-{i}", "text": f"{PARAGRAPHS['zh'][i % 5]}第{i}号。"} for i in range(40)]
    rows += [{"id": f"en-{i}", "text": f"{PARAGRAPHS['en'][i % 2]} Item {i}."} for i in range(60)]
    rows += [{"id": f"ja-{i}", "text": f"{PARAGRAPHS['ja'][i % 4]}第{i}号。"} for i in range(ja)]
    write_parquet(root / "pages.parquet", rows)


def _script_config(root, scripts, **mixture):
    return write_config(root / "mix.yaml", {
        "corpora": [{"name": "pages", "origin": "human", "paths": ["pages.parquet"], "id_column": "id"}],
        "quality": {"enabled": False},
        "dedup": {"exact": False, "near": {"enabled": False}},
        "mixture": {"unit": "documents", "targets": {"human": 1.0}, "scripts": {"human": scripts}, **mixture},
    })


def test_targets_per_script_are_exact(tmp_path):
    _script_corpus(tmp_path)
    config = _script_config(tmp_path, {"Hani": 0.6, "Latn": 0.4}, total_documents=50)
    out = str(tmp_path / "out")
    assert main(["run", config, "--output", out]) == 0
    rows = _read(out, "data")
    counts = {s: sum(1 for r in rows if r["script"] == s) for s in ("Hani", "Latn", "Jpan")}
    assert counts == {"Hani": 30, "Latn": 20, "Jpan": 0}
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    human = manifest["mixture"]["scripts"]["human"]
    assert human["Hani"]["target_fraction"] == 0.6 and human["Hani"]["achieved_fraction"] == 0.6
    assert human["Latn"]["target_fraction"] == 0.4 and human["Latn"]["achieved_fraction"] == 0.4
    # Japanese has no target: none of it is selected, and every row is still accounted for.
    assert manifest["counts"]["pages"]["not_selected"] == 105 - 50
    assert manifest["mixture"]["sources"]["pages"]["available_documents"] == 105
    # The ledger names each script's own cut-off; Japanese, without a target, had no quota.
    ledger = _read(out, "ledger")
    details = {r["detail"] for r in ledger}
    assert any("of pages (Hani text)" in d for d in details) and any("of pages (Latn text)" in d for d in details)
    japanese = {r["doc_id"] for r in rows if r["script"] == "Jpan"} | {
        r["doc_id"] for r in ledger if "(Jpan text)" in r["detail"]}
    assert japanese and not any("\x1f" in d for d in details)


def test_a_script_target_without_documents_is_infeasible(tmp_path, capsys):
    _script_corpus(tmp_path)
    config = _script_config(tmp_path, {"Hani": 0.5, "Hang": 0.5})
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 5
    assert "script Hang" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_an_unknown_script_code_is_a_config_error(tmp_path, capsys):
    _script_corpus(tmp_path)
    config = _script_config(tmp_path, {"zh": 1.0})
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 2
    assert "unknown script 'zh'" in capsys.readouterr().err


def test_exact_tokens_from_a_local_tokenizer_file(tmp_path, capsys):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    texts = [t for ts in PARAGRAPHS.values() for t in ts]
    # A real byte-level BPE tokenizer, trained here on the test paragraphs (nothing downloaded).
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(tmp_path / "tokenizer.json"))
    write_parquet(tmp_path / "pages.parquet", [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])
    base = {
        "corpora": [{"name": "pages", "origin": "human", "paths": ["pages.parquet"], "id_column": "id"}],
        "quality": {"enabled": False},
        "mixture": {"targets": {"human": 1.0}},
        "tokenizer": {"kind": "file", "path": "tokenizer.json"},
    }
    config = write_config(tmp_path / "mix.yaml", base)
    out = str(tmp_path / "out")
    assert main(["run", config, "--output", out]) == 0
    rows = _read(out, "data")
    assert len(rows) == len(texts)
    for r in rows:
        assert r["tokens"] == len(tok.encode(r["text"], add_special_tokens=False).ids)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    digest = hashlib.sha256(open(tmp_path / "tokenizer.json", "rb").read()).hexdigest()
    assert manifest["tokens"] == {"kind": "file", "file": str(tmp_path / "tokenizer.json"), "sha256": digest}

    (tmp_path / "broken.json").write_text("{not json")
    config = write_config(tmp_path / "broken.yaml", {**base, "tokenizer": {"kind": "file", "path": "broken.json"}})
    assert main(["run", config, "--output", str(tmp_path / "out2")]) == 2
    assert "cannot load" in capsys.readouterr().err
    # The message ends as the error it quotes does: with the closing quote of the path.
    config = write_config(tmp_path / "gone.yaml", {**base, "tokenizer": {"kind": "file", "path": "gone.json"}})
    assert main(["run", config, "--output", str(tmp_path / "out2")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"No such file or directory: '{tmp_path / 'gone.json'}'")


def test_the_multilingual_example_mixes_english_and_chinese_at_its_script_targets(tmp_path):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "multilingual.yaml")
    out = str(tmp_path / "out")
    assert main(["run", example, "--output", out]) == 0
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    human = manifest["mixture"]["scripts"]["human"]
    rows = _read(out, "data")
    for script in ("Latn", "Hani"):
        assert human[script]["target_fraction"] == pytest.approx({"Latn": 0.42, "Hani": 0.28}[script])
        # Within one document of the target (the largest human document, in tokens).
        largest = max(r["tokens"] for r in rows if r["origin"] == "human" and r["script"] == script)
        assert abs(human[script]["selected_units"] - human[script]["target_fraction"] * manifest["mixture"][
            "total_units"]) <= largest + 1
    dropped = {r["doc_id"]: r["filter"] for r in _read(out, "filtered") if r["source"] == "answers_zh"}
    assert dropped["syn-zh-06b"] == "refusal_v8" and dropped["syn-zh-02c"] == "repetition_loop_v5"
    near = {r["doc_id"]: r["kept_doc_id"] for r in _read(out, "duplicates") if r["source"] == "answers_zh"}
    assert near == {"syn-zh-00b": "syn-zh-00a"}


def test_corpora_named_in_any_script_run_and_line_up_in_the_summary(tmp_path, capsys):
    """A corpus may be called 中文语料 or Корпус-1 (v1 allowed ASCII letters only): the name goes into the
    doc ids, the manifest and the ledger, and the terminal's tables give a wide character two columns."""
    write_parquet(tmp_path / "zh.parquet", [{"text": t} for t in PARAGRAPHS["zh"]])
    write_parquet(tmp_path / "ru.parquet", [{"text": f"Ответ номер {i}: это полный и законченный ответ на вопрос."}
                                           for i in range(4)])
    config = write_config(tmp_path / "mix.yaml", {
        "corpora": [{"name": "中文语料", "origin": "human", "paths": ["zh.parquet"]},
                    {"name": "Корпус-1", "origin": "synthetic", "paths": ["ru.parquet"]}],
        "mixture": {"unit": "documents", "targets": {"human": 0.5, "synthetic": 0.5}},
    })
    out = str(tmp_path / "out")
    assert main(["run", config, "--output", out]) == 0
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert set(manifest["counts"]) == {"中文语料", "Корпус-1"}
    rows = _read(out, "data")
    assert {r["source"] for r in rows} == {"中文语料", "Корпус-1"}
    assert all(r["doc_id"].startswith(f"{r['source']}/") for r in rows)
    assert {r["source"] for r in _read(out, "ledger")} == {"中文语料", "Корпус-1"}
    capsys.readouterr()
    assert main(["inspect", out]) == 0
    table = capsys.readouterr().out.split("\n\n")[1].splitlines()
    # Every cell of the table ends in the same column on every line.
    assert table[2].startswith("中文语料  ") and table[3].startswith("Корпус-1  ")
    assert len({display_width(line) for line in table}) == 1
    ends = [[display_width(line[:m.end()]) for m in re.finditer(r"\S+", line)][-3:] for line in table[2:]]
    assert len({tuple(e) for e in ends}) == 1
