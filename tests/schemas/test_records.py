import types
import typing

import pyarrow as pa
import pytest

from hybridmix.schemas.config import Origin
from hybridmix.schemas.reasons import DuplicateKind, DuplicateLineage, Fate
from hybridmix.schemas.records import RECORD_TYPES

# Which Arrow types may carry each pydantic annotation.
_ARROW_FOR = {
    str: (pa.string(),),
    int: (pa.int8(), pa.int16(), pa.int32(), pa.int64()),
    float: (pa.float32(), pa.float64()),
    Origin: (pa.string(),),
    DuplicateKind: (pa.string(),),
    DuplicateLineage: (pa.string(),),
    Fate: (pa.string(),),
    list[str]: (pa.list_(pa.string()),),
    list[int]: (pa.list_(pa.uint64()),),
    bytes: (pa.binary(),),
}


def _unwrap(annotation):
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return annotation, False


@pytest.mark.parametrize("folder", sorted(RECORD_TYPES))
def test_pydantic_model_and_arrow_schema_agree(folder):
    model, schema = RECORD_TYPES[folder]
    assert list(model.model_fields) == schema.names
    for name, field in model.model_fields.items():
        annotation, optional = _unwrap(field.annotation)
        arrow_field = schema.field(name)
        assert arrow_field.type in _ARROW_FOR[annotation], name
        assert arrow_field.nullable == optional, name


def test_document_schema_has_every_design_column():
    design = ["id", "doc_id", "text", "origin", "source", "generator", "generation", "parent_id", "license",
              "source_file", "source_row", "content_hash", "tokens", "chars", "script", "quality_flags", "dup_cluster",
              "dup_cluster_size", "repeat", "split", "run_id", "config_digest", "meta"]
    schema = RECORD_TYPES["data"][1]
    assert set(design) <= set(schema.names)
    assert schema.field("generation").type == pa.int8()
    assert schema.field("repeat").type == pa.int16()


def test_records_round_trip_through_arrow():
    model, schema = RECORD_TYPES["duplicates"]
    record = model(doc_id="a", kept_doc_id="b", cluster="b", cluster_size=2, kind="near", similarity=0.75,
                   origin="synthetic", source="s", generator="g", kept_origin="human", kept_source="h",
                   kept_generator=None, lineage="child", source_file="f",
                   source_row=3, run_id="r", kept_run_id="r")
    table = pa.Table.from_pylist([record.model_dump(mode="json")], schema=schema)
    assert model.model_validate(table.to_pylist()[0]) == record
