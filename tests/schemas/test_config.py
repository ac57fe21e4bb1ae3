import unicodedata

import pytest

from hybridmix.schemas.config import load_config, parse_config
from hybridmix.schemas.errors import ConfigError
from hybridmix.schemas.filters import FILTER_PARAMS, describe_bounds
from tests.builders import make_config, write_config

BASE = {
    "corpora": [{"name": "h", "origin": "human", "paths": ["h.parquet"]},
                {"name": "s", "origin": "synthetic", "paths": ["s.parquet"]}],
    "mixture": {"targets": {"human": 0.7, "synthetic": 0.3}},
}


def with_changes(**changes):
    data = {k: (v.copy() if isinstance(v, dict) else [dict(c) for c in v]) for k, v in BASE.items()}
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


def test_minimal_config_gets_declared_defaults():
    cfg = parse_config(with_changes())
    assert cfg.mixture.unit == "tokens"
    assert cfg.dedup.near.num_perm == 256
    assert cfg.dedup.near.effective_verify_threshold == pytest.approx(0.75)
    assert cfg.corpora[1].default_generation == 1
    assert cfg.corpora[0].default_generation == 0


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"corpora__0__tex_column": "t"}, "corpora[0].tex_column: unknown key"),
        ({"corpora__0__origin": "robot"}, "corpora[0].origin: Input should be 'human' or 'synthetic'"),
        ({"mixture": {"targets": {"human": 0.7, "synthetic": 0.2}}}, "mixture.targets: fractions must sum to 1"),
        ({"mixture": {"targets": {"human": 0.7, "synthetic": 0.30000001}}},
         "fractions must sum to 1, they sum to 1.00000001"),
        ({"mixture": {"targets": {"human": 0.5, "other": 0.5}}},
         "mixture.targets.other: Input should be 'human' or 'synthetic' (got 'other')"),
        ({"mixture": {"targets": {"human": 1.0, "synthetic": 0.0}, "max_repeats": 0}},
         "mixture.max_repeats: Input should be greater than or equal to 1"),
        ({"mixture": {"targets": {"human": 1.0, "synthetic": 0.0}, "total_tokens": -5}},
         "mixture.total_tokens: Input should be greater than 0"),
        ({"mixture": {"targets": {"human": 0.5, "synthetic": 0.5}, "guards": {"max_synthetic_fraction": 0.4}}},
         "mixture.guards.max_synthetic_fraction: target synthetic fraction 0.5 exceeds the guard 0.4"),
        ({"corpora__1__name": "h"}, "corpora[1].name: 'h' is used by more than one corpus"),
        ({"corpora__0__defaults": {"generation": 2}}, "corpora[0].defaults.generation: human text has generation 0"),
        ({"mixture": {"targets": {"human": 1.0}}}, "mixture.targets: corpora of origin synthetic exist but have no target"),
        ({"mixture": {"targets": {"human": 0.7, "synthetic": 0.3}, "source_weights": {"x": 1}}},
         "mixture.source_weights.x: no corpus has that name"),
        ({"dedup": {"near": {"bands": 30, "rows": 10}}}, "dedup.near.bands: bands x rows = 300 exceeds num_perm = 256"),
        ({"corpora": []}, "corpora: List should have at least 1 item"),
        ({"tokenizer": {"kind": "file"}}, "config: tokenizer.path: give a tokenizer.json path"),
        ({"mixture": {}}, "give either targets (per origin) or weights (per source); this config gives neither"),
        ({"mixture": {"targets": {"human": 0.5, "synthetic": 0.5}, "weights": {"wiki": 1}}},
         "give either targets (per origin) or weights (per source); this config gives both"),
        ({"dedup": {"against_origins": ["synthetic", "synthetic"]}}, "dedup.against_origins: name each origin once"),
    ],
    ids=["unknown-key", "bad-origin", "fractions-sum", "fractions-sum-close", "unknown-target-origin",
         "zero-repeats", "negative-total", "guard-vs-target",
         "duplicate-name", "human-generation", "missing-target", "unknown-weight-source", "bands-too-many",
         "no-corpora", "tokenizer-file-without-path", "neither-targets-nor-weights", "targets-and-weights",
         "against-origins-twice"],
)
def test_errors_name_the_key_path(changes, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(**changes))
    assert expected in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    "filters, expected",
    [
        ([{"name": "alpha_words", "params": {"min_share": 60}}],
         "quality.filters[0].params.min_share: alpha_words needs 0 <= min_share <= 1 (got 60)"),
        ([{"name": "word_count"}, {"name": "char_repetition", "params": {"max_share": -1.0}}],
         "quality.filters[1].params.max_share: char_repetition needs 0 <= max_share <= 1 (got -1.0)"),
        ([{"name": "word_count", "params": {"min_words": 500, "max_words": 10}}],
         "quality.filters[0].params.min_words: word_count needs min_words <= max_words (got 500 and 10)"),
        ([{"name": "mean_word_length", "params": {"min_chars": 8, "max_chars": 3.5}}],
         "quality.filters[0].params.min_chars: mean_word_length needs min_chars <= max_chars (got 8 and 3.5)"),
        ([{"name": "truncated", "params": {"min_words": -1}}],
         "quality.filters[0].params.min_words: truncated needs min_words >= 0 (got -1)"),
        ([{"name": "prompt_echo", "params": {"max_length_ratio": 0.0}}],
         "quality.filters[0].params.max_length_ratio: prompt_echo needs max_length_ratio > 0 (got 0.0)"),
        ([{"name": "refusal", "origins": []}],
         "quality.filters[0].origins: an empty list applies refusal to no document; leave origins out"),
        ([{"name": "refusal", "sources": []}],
         "quality.filters[0].sources: an empty list applies refusal to no document; leave sources out"),
        ([{"name": "refusal", "origins": ["human"], "sources": ["s"]}],
         "quality.filters[0].sources: refusal applies to human text only, and none of s (synthetic) holds any"),
    ],
    ids=["share-as-percentage", "negative-share", "min-above-max", "min-above-max-chars", "negative-count",
         "zero-ratio", "no-origins", "no-sources", "sources-outside-origins"],
)
def test_filter_errors_name_the_filter_the_parameter_and_its_bounds(filters, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(quality={"filters": filters}))
    assert expected in info.value.message
    assert "\n" not in info.value.message


def test_a_filter_listed_twice_needs_other_params_or_scope():
    refusal = {"name": "refusal", "params": {"max_words": 100}, "origins": ["synthetic"]}
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(quality={"filters": [refusal, {**refusal, "mode": "flag"}]}))
    assert ("quality.filters[1]: repeats filters[0] (refusal with the same params, origins and sources)"
            in info.value.message)
    # No origins is every origin: the same scope as both named.
    with pytest.raises(ConfigError, match=r"quality.filters\[1\]: repeats filters\[0\]"):
        parse_config(with_changes(quality={"filters": [{"name": "truncated"},
                                                       {"name": "truncated", "origins": ["synthetic", "human"]}]}))
    # Drop short refusals, flag the rest; or one rule per origin, as the defaults do.
    parse_config(with_changes(quality={"filters": [refusal, {**refusal, "params": {}, "mode": "flag"}]}))
    parse_config(with_changes(quality={"filters": [refusal, {**refusal, "origins": ["human"]}]}))


def test_every_numeric_filter_parameter_declares_its_bounds():
    for name, model in FILTER_PARAMS.items():
        for param, field in model.model_fields.items():
            if field.annotation is not bool:
                assert describe_bounds(model, param) is not None, f"{name}.{param}"
    shares = [(name, param) for name, model in FILTER_PARAMS.items() for param in model.model_fields
              if param.endswith(("share", "coverage", "overlap"))]
    assert len(shares) == 9
    for name, param in shares:
        assert describe_bounds(FILTER_PARAMS[name], param) == f"0 <= {param} <= 1", f"{name}.{param}"


def test_several_problems_are_reported_on_one_line():
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(corpora__0__bogus=1, seed=-1))
    assert "corpora[0].bogus: unknown key" in info.value.message
    assert "seed: Input should be greater than or equal to 0" in info.value.message


def test_yaml_with_repeated_key_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\nseed: 2\ncorpora: []\n")
    with pytest.raises(ConfigError, match="key 'seed' appears twice"):
        load_config(path)


def test_yaml_cannot_build_python_objects(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_load_config_round_trip(tmp_path):
    path = write_config(tmp_path / "c.yaml", BASE)
    assert load_config(path) == parse_config(BASE)


def test_digest_ignores_output_path_but_not_seed():
    cfg = make_config()
    assert cfg.digest() == cfg.with_overrides(output_path="/elsewhere").digest()
    assert cfg.digest() != cfg.with_overrides(seed=7).digest()


def test_star_rounds_do_not_change_the_digest():
    # The clusters are the same for any number of rounds: runs that differ only there match.
    cfg = parse_config(with_changes(dedup={"near": {"max_cc_rounds": 1}}))
    assert cfg.digest() == parse_config(with_changes(dedup={"near": {"max_cc_rounds": 9}})).digest()
    assert cfg.digest() != parse_config(with_changes(dedup={"near": {"max_cc_rounds": 1, "ngram": 4}})).digest()


def test_overrides_are_validated():
    with pytest.raises(ConfigError, match="seed"):
        make_config().with_overrides(seed=-3)


def test_parent_copies_defaults_to_drop_and_only_keep_changes_the_digest():
    cfg = parse_config(with_changes())
    assert cfg.dedup.parent_copies == "drop"
    assert cfg.digest() == parse_config(with_changes(dedup={"parent_copies": "drop"})).digest()
    assert cfg.digest() != parse_config(with_changes(dedup={"parent_copies": "keep"})).digest()
    with pytest.raises(ConfigError, match="dedup.parent_copies: Input should be 'drop' or 'keep'"):
        parse_config(with_changes(dedup={"parent_copies": "spare"}))


def _carried(**keys):
    return with_changes(corpora__0={"name": "h", "origin": "human", "paths": ["gen1"], "format": "hybridmix", **keys})


def test_hybridmix_corpus_gets_hybridmix_columns_and_keeps_them_through_overrides():
    cfg = parse_config(_carried())
    corpus = cfg.corpora[0]
    assert corpus.carried and corpus.id_column == "doc_id" and corpus.text_column == "text"
    assert corpus.columns.model_dump() == {"generator": "generator", "generation": "generation", "license": "license",
                                           "url": "url", "parent_id": "parent_id"}
    # The resolved config (as a manifest holds it) names the mapping and is valid again.
    assert cfg.with_overrides(seed=1).corpora[0] == corpus
    assert parse_config(_carried(id_column="doc_id", columns={"url": "url"})).corpora[0] == corpus
    assert parse_config(_carried(defaults={"license": "CC0"})).corpora[0].defaults.license == "CC0"


@pytest.mark.parametrize(
    "keys, expected",
    [
        ({"id_column": "id"}, "corpora[0].id_column: a format: hybridmix corpus reads hybridmix's own columns "
                              "(id_column 'doc_id'); leave id_column out"),
        ({"text_column": "body"}, "corpora[0].text_column: a format: hybridmix corpus reads hybridmix's own columns"),
        ({"columns": {"generator": "model"}}, "corpora[0].columns: a format: hybridmix corpus reads hybridmix's own "
                                              "columns (generator from generator, generation from generation"),
        ({"keep_columns": ["title"]}, "corpora[0].keep_columns: not with format: hybridmix (the earlier output's meta"),
        ({"prompt_column": "prompt"}, "corpora[0].prompt_column: not with format: hybridmix"),
        ({"defaults": {"generation": 0}}, "corpora[0].defaults.generation: not with format: hybridmix"),
        ({"format": "csv"}, "corpora[0].format: Input should be 'parquet', 'jsonl' or 'hybridmix'"),
    ],
    ids=["id", "text", "columns", "keep", "prompt", "generation", "unknown-format"],
)
def test_hybridmix_corpus_mapping_cannot_be_changed(keys, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(_carried(**keys))
    assert expected in info.value.message


def _guarded(guard):
    return with_changes(mixture={"targets": {"human": 0.7, "synthetic": 0.3}, "guards": {"carry_forward": guard}})


def test_carry_forward_takes_a_path_or_ratios():
    short = parse_config(_guarded("out/gen1")).mixture.guards.carry_forward
    assert (short.path, short.min_human_tokens, short.min_human_documents) == ("out/gen1", 1.0, 1.0)
    full = parse_config(_guarded({"path": "out/gen1", "min_human_tokens": 1.5, "min_human_documents": 0})
                        ).mixture.guards.carry_forward
    assert (full.min_human_tokens, full.min_human_documents) == (1.5, 0.0)
    assert parse_config(_guarded("out/gen1")).digest() != parse_config(_guarded("out/gen2")).digest()


@pytest.mark.parametrize(
    "guard, expected",
    [
        ({"path": "g", "min_human_documents": 1.5}, "mixture.guards.carry_forward.min_human_documents: Input should be "
                                                    "less than or equal to 1"),
        ({"path": "g", "min_human_tokens": -1}, "mixture.guards.carry_forward.min_human_tokens: Input should be "
                                                "greater than or equal to 0"),
        ({"min_human_tokens": 1}, "mixture.guards.carry_forward.path: Field required"),
        ({"path": "g", "ratio": 1}, "mixture.guards.carry_forward.ratio: unknown key"),
    ],
    ids=["documents-above-1", "negative-tokens", "no-path", "unknown-key"],
)
def test_carry_forward_errors_name_the_key(guard, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(_guarded(guard))
    assert expected in info.value.message


@pytest.mark.parametrize("name", ["中文语料", "Корпус-1", "données_fr", "हिन्दी", "한국어.v2", "ภาษาไทย",
                                  "كتاب\u200cها", "wiki:en"])
def test_corpus_names_may_be_written_in_any_script(name):
    config = parse_config(with_changes(corpora__0__name=name))
    assert config.corpora[0].name == name


@pytest.mark.parametrize("name", ["two words", "a/b", "_lead", "-lead", "zero\u200bwidth", ""])
def test_a_name_with_a_space_slash_or_invisible_character_is_refused(name):
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(corpora__0__name=name))
    assert "corpora[0].name: " in info.value.message
    assert "is not a name" in info.value.message or "at least 1 character" in info.value.message


def test_a_name_typed_with_its_accents_apart_is_the_same_name():
    """Tiếng_Việt composed (NFC) and with its marks typed apart (NFD) look the same: one name, stored as NFC."""
    nfd = unicodedata.normalize("NFD", "Tiếng_Việt")
    assert parse_config(with_changes(corpora__0__name=nfd)).corpora[0].name == "Tiếng_Việt"
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(corpora__0__name=nfd, corpora__1__name="Tiếng_Việt"))
    assert "is used by more than one corpus" in info.value.message
