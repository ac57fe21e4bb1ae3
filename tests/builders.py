"""Small builders for test inputs: deterministic texts, Parquet files, configs."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from hybridmix.schemas.config import PipelineConfig, parse_config
from hybridmix.transforms import columns
from hybridmix.transforms.batches import list_array
from hybridmix.transforms.text import analyze, content_hashes, text_hashes, scripts

_VOCAB = (
    "river stone garden window market signal harbor lantern meadow copper engine forest "
    "winter letter bridge valley pencil rocket candle thunder orchard canvas mirror basket "
    "planet silver ladder castle island anchor feather violin glacier compass tunnel desert "
    "saddle beacon quartz marble falcon cedar velvet summit harvest prism timber canyon"
).split()


def words(seed: int, n: int) -> str:
    """A deterministic pseudo-sentence of n words; different seeds give unrelated texts."""
    rng = np.random.RandomState(seed)
    return " ".join(_VOCAB[i] for i in rng.randint(0, len(_VOCAB), n)) + "."


def near_copy(text: str, changes: int = 1) -> str:
    """The text with its last `changes` words replaced: a near duplicate of a long text."""
    parts = text.rstrip(".").split(" ")
    for k in range(1, changes + 1):
        parts[-k] = "zeppelin"
    return " ".join(parts) + "."


def light_edit(text: str, *positions: int) -> str:
    """The text with the words at `positions` replaced: a rephrase that barely changed its source.
    Each edit costs `ngram` shingles, so two edits of a 200-word text keep Jaccard near 0.9."""
    parts = text.rstrip(".").split(" ")
    for k in positions:
        parts[k] = "zeppelin"
    return " ".join(parts) + "."


def write_parquet(path: str | os.PathLike, rows: list[dict[str, Any]], schema: pa.Schema | None = None,
                  row_group_size: int | None = None) -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, str(path), row_group_size=row_group_size)
    return str(path)


# A progress line on stderr that is not a terminal: `hybridmix [  3.9 s] read: ...`.
PROGRESS_LINE = re.compile(r"^hybridmix \[ *[0-9][^\]]*\] ")


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if PROGRESS_LINE.match(line)]


def other_lines(stderr: str) -> list[str]:
    """stderr's non-empty lines that are not progress lines (errors, warnings)."""
    return [line for line in stderr.strip().splitlines() if line and not PROGRESS_LINE.match(line)]


def make_config(**overrides: Any) -> PipelineConfig:
    """A valid config with one human and one synthetic corpus; keys in `overrides` replace the defaults."""
    data: dict[str, Any] = {
        "corpora": [
            {"name": "human", "origin": "human", "paths": ["human/*.parquet"], "id_column": "id"},
            {"name": "synth", "origin": "synthetic", "paths": ["synth/*.parquet"], "id_column": "id",
             "columns": {"generator": "model"}},
        ],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    }
    data.update(overrides)
    return parse_config(data)


def write_config(path: str | os.PathLike, data: dict[str, Any]) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    return str(path)


def make_documents(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """A batch in the internal document schema; each row needs text, the rest defaults."""
    out = []
    for i, r in enumerate(rows):
        base = {
            "uid": i, "doc_id": f"d{i}", "origin": "synthetic", "source": "s", "generator": None,
            "generation": 1, "parent_id": None, "license": None, "url": None, "prompt": None, "meta": None,
            "content_hash": content_hashes(analyze(pa.array([r["text"]])).normalized)[0].as_py(),
            "tokens": len(r["text"].split()), "chars": len(r["text"]), "bytes": len(r["text"].encode()),
            "script": scripts(analyze(pa.array([r["text"]]))).to_pylist()[0],
        }
        base.update(r)
        out.append(base)
    analysis = analyze(pa.array([r["text"] for r in out], pa.string()))
    words = list_array(analysis.word_hashes, analysis.word_offsets).to_pylist()
    text_hash = text_hashes(pa.array([r["text"] for r in out], pa.string()))
    for row, w, h in zip(out, words, text_hash.tolist()):
        row.setdefault("word_hashes", w)
        row.setdefault("text_hash", h)
    return pa.RecordBatch.from_pylist(out, schema=columns.DOCUMENT)


def make_scored(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """Documents as they leave the quality filters (no flags, score 1)."""
    docs = make_documents(rows)
    n = docs.num_rows
    return pa.RecordBatch.from_arrays(
        list(docs.columns) + [pa.array([[]] * n, pa.list_(pa.string())), pa.array([1.0] * n, pa.float32())],
        schema=columns.SCORED_DOCUMENT,
    )


def sketch_inputs(p, tmp_path, rows: list[dict[str, Any]], dedup: dict[str, Any] | None = None, partitions: int = 4):
    """Write `rows` as one Parquet corpus per source, read and sketch them the way a run does.

    Each row needs doc_id and text; origin (default synthetic), source (default "gen"),
    generator and parent_id are optional. Returns (config, read spec, ReadCorpora's outputs,
    SketchDocuments' outputs).
    """
    from hybridmix.transforms.ingest import ReadCorpora
    from hybridmix.transforms.inputs import ReadSpec, plan_inputs
    from hybridmix.transforms.quality import FilterQuality
    from hybridmix.transforms.sketch import SketchDocuments

    by_source: dict[str, list[dict[str, Any]]] = {}
    origins: dict[str, str] = {}
    for r in rows:
        source = r.get("source", "gen")
        origins[source] = r.get("origin", "synthetic")
        by_source.setdefault(source, []).append(
            {"id": r["doc_id"], "text": r["text"], "generator": r.get("generator"), "parent_id": r.get("parent_id")})
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("generator", pa.string()),
                        ("parent_id", pa.string())])
    for source, items in by_source.items():
        write_parquet(os.path.join(str(tmp_path), "in", f"{source}.parquet"), items, schema=schema)
    config = parse_config({
        "corpora": [{"name": s, "origin": o, "paths": [f"in/{s}.parquet"], "id_column": "id",
                     "columns": {"generator": "generator", "parent_id": "parent_id"}} for s, o in origins.items()],
        "mixture": {"targets": {o: 1.0 / len(set(origins.values())) for o in set(origins.values())}},
        "quality": {"enabled": False},
        "dedup": dedup or {},
        "partitions": partitions,
        "read_batch_rows": 50,
    })
    spec = ReadSpec(config.ingest, plan_inputs(config.ingest, str(tmp_path)), "run")
    read = p | ReadCorpora(spec)
    kept = read.docs | FilterQuality(config.quality, spec.lineage)
    sketch = kept.kept | SketchDocuments(config.dedup, partitions, os.path.join(str(tmp_path), "spill"))
    return config, spec, read, sketch


def dedup_inputs(p, tmp_path, rows: list[dict[str, Any]], dedup: dict[str, Any] | None = None, partitions: int = 4):
    """`sketch_inputs`, and near dedup's input: ((INFO, band blocks) PCollections, Deduplicate transform)."""
    from hybridmix.transforms.dedup import Deduplicate
    from hybridmix.transforms.sketch import CandidateSignatures

    config, spec, _, sketch = sketch_inputs(p, tmp_path, rows, dedup, partitions)
    dedup_transform = Deduplicate(config.dedup, partitions, spec.lineage,
                                  CandidateSignatures(spec, config.dedup.near, partitions, sketch.signatures),
                                  str(tmp_path / "near-spill"))
    return (sketch.info, sketch.bands), dedup_transform


def lineage_rows() -> list[dict[str, Any]]:
    """Human parents (wiki), their rephrases (light edits, above the 0.8 threshold) with parent_id, and
    unrelated near copies: every case of lineage dedup, as rows for `dedup_inputs`."""
    h = {i: words(40 + i, 200) for i in range(6)}
    p4 = words(90, 200)

    def human(i):
        return {"doc_id": f"h{i}", "origin": "human", "source": "wiki", "text": h[i]}

    def rephrase(doc_id, text, parent_id, generator="m-a", source="rephrase"):
        return {"doc_id": doc_id, "source": source, "generator": generator, "parent_id": parent_id, "text": text}

    return [
        *(human(i) for i in range(6)),
        # h0's cluster: its rephrase c0, an exact copy of that rephrase, and an unrelated near copy.
        rephrase("c0", light_edit(h[0], 20, 120), "h0"),
        rephrase("c0x", "  " + light_edit(h[0], 20, 120).upper(), "h0", "m-b"),
        {"doc_id": "u0", "source": "chat", "generator": "m-z", "text": light_edit(h[0], 60, 160)},
        # A "rephrase" that changed nothing: an exact copy of its parent.
        rephrase("e1", h[1].lower(), "h1"),
        {"doc_id": "u2", "source": "chat", "generator": "m-z", "text": light_edit(h[2], 50, 150)},
        # s3 copies h3 and g2 copies s3: g2's parent is removed, not kept, so neither is a self-copy.
        {"doc_id": "s3", "source": "chat", "generator": "m-z", "text": light_edit(h[3], 30, 130)},
        rephrase("g2", light_edit(light_edit(h[3], 30, 130), 90), "s3"),
        # Synthetic from synthetic: the copy has the lower doc_id, so it is kept and its parent removed.
        {"doc_id": "z-p4", "source": "gen2", "generator": "m-c", "text": p4},
        rephrase("a-c4", light_edit(p4, 70, 170), "z-p4", "m-c", "gen2"),
        # h5's only partner is its own rephrase: sparing it leaves h5 without a cluster.
        rephrase("c5", light_edit(h[5], 40, 140), "h5", "m-b"),
    ]


def slow_config(root, rows: int = 16_000) -> str:
    """A human and a synthetic corpus big enough that a run lasts several seconds (long enough to
    interrupt), and their config; `root/in` holds both."""
    from benchmarks.make_corpus import generate

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    texts, _ = generate(rows, seed=3, mean_bytes=800, exact_share=0.02, near_share=0.02,
                        sources=[os.path.join(repo, "examples", "data", "human_wikipedia.parquet")])
    half = len(texts) // 2
    root = str(root)
    write_parquet(os.path.join(root, "in", "human.parquet"),
                  [{"id": f"h{i}", "text": t} for i, t in enumerate(texts[:half])], row_group_size=2000)
    write_parquet(os.path.join(root, "in", "synth.parquet"),
                  [{"id": f"s{i}", "text": t, "model": "m"} for i, t in enumerate(texts[half:])], row_group_size=2000)
    return write_config(os.path.join(root, "in", "config.yaml"), {
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
            {"name": "chat", "origin": "synthetic", "paths": ["synth.parquet"], "id_column": "id",
             "columns": {"generator": "model"}},
        ],
        "mixture": {"targets": {"human": 0.6, "synthetic": 0.4}},
    })


# A text that must reach report.html as text, never as markup or as terminal/bidi controls.
HOSTILE_HTML = "I'm sorry, but I cannot help with that. <script>alert('x')</script> \u202eevil\u202c \x1b[31m"


def report_corpus(root, hostile: str = HOSTILE_HTML) -> str:
    """A small human + synthetic corpus that gives every part of report.html something to show, and its
    config: a refusal holding `hostile` (dropped by the refusal filter), a too-short answer, five long
    answers that repeat their lines (dropped), a bulleted answer (flagged), an exact human duplicate, a
    synthetic near copy of a human text (a cluster that mixes origins), a blank answer (rejected), and
    scored synthetic text. Returns the config path; `root/in` holds the files."""
    root = str(root)
    human = [{"id": f"h{i}", "text": words(i, 60 + i % 40)} for i in range(60)]
    human.append({"id": "h-copy", "text": human[3]["text"]})
    synth = [{"id": f"s{i}", "text": words(1000 + i, 80 + 7 * (i % 30)), "model": f"m{i % 3}"} for i in range(80)]
    synth += [
        {"id": "s-refusal", "text": hostile, "model": "m0"},
        {"id": "s-short", "text": "Yes, sure.", "model": "m1"},
        {"id": "s-bullets", "text": "- " + "\n- ".join(words(2000 + k, 6) for k in range(8)), "model": "m1"},
        {"id": "s-copies-human", "text": near_copy(human[5]["text"]), "model": "m2"},
        {"id": "s-empty", "text": "   ", "model": "m2"},
    ]
    # Long answers that repeat their lines: more of them than the report shows, each longer than it shows.
    synth += [{"id": f"s-loop{k}", "text": (words(3000 + k, 14) + "\n") * 40, "model": "m0"} for k in range(5)]
    write_parquet(os.path.join(root, "in", "human.parquet"), human)
    write_parquet(os.path.join(root, "in", "synth.parquet"), synth)
    return write_config(os.path.join(root, "in", "config.yaml"), {
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
            {"name": "chat", "origin": "synthetic", "paths": ["synth.parquet"], "id_column": "id",
             "columns": {"generator": "model"}},
        ],
        "mixture": {"targets": {"human": 0.6, "synthetic": 0.4}, "selection": {"synthetic": "weighted"}},
    })
