"""Pure parts of reading earlier outputs and of the carry-forward guard."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybridmix.schemas.errors import GuardViolation
from hybridmix.transforms.earlier import carried_counts, carried_meta, carried_positions
from hybridmix.transforms.mixture_core import CarryForward, check_carry_forward

ROWS = pa.RecordBatch.from_pydict({
    "origin": ["human", "synthetic", "human", "human", "synthetic", None],
    "repeat": pa.array([0, 0, 1, 0, 2, 0], pa.int16()),
})


@pytest.mark.parametrize("origin, rows", [("human", [0, 3]), ("synthetic", [1])], ids=["human", "synthetic"])
def test_a_corpus_takes_its_origins_documents_not_their_copies(origin, rows):
    assert carried_positions(ROWS, origin).tolist() == rows


def test_plan_counts_taken_copies_and_other_origin_per_row_group(tmp_path):
    path = str(tmp_path / "data.parquet")
    pq.write_table(pa.Table.from_batches([ROWS]), path, row_group_size=4)
    taken, copies, other = carried_counts(pq.ParquetFile(path), path, "human")
    assert (taken, copies, other) == ((2, 0), 2, 2)  # the null origin is not this corpus's: left to the other
    assert sum(taken) + copies + other == ROWS.num_rows


@pytest.mark.parametrize(
    "before, after",
    [
        (None, {"carried_from": ["hm-2"]}),
        ('{"title": "T"}', {"title": "T", "carried_from": ["hm-2"]}),
        ('{"carried_from": ["hm-1"], "k": 1}', {"carried_from": ["hm-1", "hm-2"], "k": 1}),
        ('{"carried_from": "hm-1"}', {"carried_from": ["hm-1", "hm-2"]}),
        ('[1, 2]', {"meta": "[1, 2]", "carried_from": ["hm-2"]}),
        ("not json", {"meta": "not json", "carried_from": ["hm-2"]}),
    ],
    ids=["null", "object", "earlier-generations", "string", "array", "not-json"],
)
def test_meta_is_kept_and_names_the_earlier_run_last(before, after):
    (meta,) = carried_meta(pa.array([before], pa.string()), "hm-2").to_pylist()
    assert json.loads(meta) == after


GUARD = CarryForward(output="../gen1", run_id="hm-1", human_tokens=1000, human_documents=10,
                     min_human_tokens=1.0, min_human_documents=1.0)


def test_guard_passes_when_everything_is_carried():
    check_carry_forward(GUARD, 1000, 10)
    check_carry_forward(GUARD, 5000, 10)


@pytest.mark.parametrize(
    "tokens, documents, expected",
    [
        (999, 10, "guards.carry_forward: the mixture holds 999 human tokens (one copy of each document), fewer "
                  "than 1 x the 1,000 of the earlier output ../gen1 (run hm-1); add human data"),
        (5000, 9, "guards.carry_forward: the mixture selects 9 of the 10 human documents of the earlier output ../gen1 "
                  "(run hm-1), fewer than 1 x 10; read them with a format: hybridmix corpus of origin human and "
                  "paths [../gen1]"),
    ],
    ids=["tokens", "documents"],
)
def test_guard_names_both_numbers_and_what_to_change(tokens, documents, expected):
    with pytest.raises(GuardViolation) as info:
        check_carry_forward(GUARD, tokens, documents)
    assert expected in info.value.message


def test_guard_ratios_scale_the_earlier_figures():
    lenient = CarryForward("../gen1", "hm-1", 1000, 10, min_human_tokens=0.5, min_human_documents=0.0)
    check_carry_forward(lenient, 500, 0)
    with pytest.raises(GuardViolation, match="fewer than 0.5 x the 1,000"):
        check_carry_forward(lenient, 499, 0)
