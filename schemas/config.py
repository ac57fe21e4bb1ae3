"""The run configuration: one YAML file validated by these pydantic models.

Every default a run uses is declared here (and, for quality filters' parameters, in
`schemas/filters.py`), so the resolved config written to the manifest says everything that
shaped the output.
"""

from __future__ import annotations

import hashlib
import json
import math
import reprlib
import unicodedata
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from hybridmix.schemas.errors import ConfigError
from hybridmix.schemas.filters import FILTER_PARAMS, FilterParams, describe_bounds
from hybridmix.schemas.scripts import SCRIPTS

# Names appear in doc ids, the manifest, the ledger and tables, never in file names: letters and digits
# of any script (a corpus may be called 中文语料, Корпус-1 or हिन्दी), then also marks, "_", ".", ":", "-",
# and the zero-width joiners Persian and Indic words are spelled with. No spaces, slashes or other
# invisible characters, which make two names that look the same.
NAME_CHARS = "_.:-\u200c\u200d"


def _checked_name(value: str) -> str:
    """`value` as NFC writes it: Tiếng_Việt with its accents composed or typed apart is one name."""
    first_ok = bool(value) and unicodedata.category(value[0])[0] in "LN"
    if not first_ok or not all(unicodedata.category(c)[0] in "LMN" or c in NAME_CHARS for c in value[1:]):
        raise ValueError(f"{value!r} is not a name: a letter or digit (of any script) first, then letters, "
                         "digits, marks, '_', '.', ':' or '-'; no spaces")
    return unicodedata.normalize("NFC", value)


Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_checked_name)]


class _Model(BaseModel):
    # Numbers are numbers: `seed: true`, `seed: '5'` or `weights: {x: .inf}` are errors, not 1, 5 and inf.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Origin(StrEnum):
    HUMAN = "human"
    SYNTHETIC = "synthetic"


ORIGIN_RANK = {Origin.HUMAN: 0, Origin.SYNTHETIC: 1}


class ProvenanceColumns(_Model):
    """Input columns that hold provenance values, per corpus (all optional)."""

    generator: str | None = None
    generation: str | None = None
    license: str | None = None
    url: str | None = None
    parent_id: str | None = None


class ProvenanceDefaults(_Model):
    """Constant provenance values for rows whose mapped column is absent or null."""

    generator: str | None = None
    generation: StrictInt | None = Field(default=None, ge=0, le=127)
    license: str | None = None
    url: str | None = None


# What a `format: hybridmix` corpus reads of an earlier output's data/ (README, "Generational mixes"):
# its columns are hybridmix's own, so the mapping is fixed. Given in a config, these keys may only
# repeat these values (the resolved config in a manifest names them).
CARRIED_MAPPING: dict[str, Any] = {
    "text_column": "text",
    "id_column": "doc_id",
    "columns": {"generator": "generator", "generation": "generation", "license": "license", "url": "url",
                "parent_id": "parent_id"},
}
# Keys a hybridmix corpus cannot set: the earlier output has no prompt column, and its `meta` is carried whole.
_NOT_CARRIED = {
    "keep_columns": "the earlier output's meta column is carried whole, with carried_from added",
    "prompt_column": "an earlier output has no prompt column",
}


class CorpusConfig(_Model):
    """One input corpus: a set of Parquet or JSON Lines files of one origin, or the documents of one
    origin in earlier hybridmix outputs (`format: hybridmix`)."""

    name: Name
    origin: Origin
    paths: list[str] = Field(min_length=1)
    text_column: str = "text"
    id_column: str | None = None
    columns: ProvenanceColumns = ProvenanceColumns()
    defaults: ProvenanceDefaults = ProvenanceDefaults()
    # Input columns carried into `meta` (a JSON object): a list keeps their names as keys; a mapping
    # {key: column} renames them, e.g. {title: source} where a column's name would read as another field.
    keep_columns: list[str] | dict[str, str] = Field(default_factory=list)
    prompt_column: str | None = None
    # Default: by each file's name: JSON Lines for .jsonl, .ndjson or .json (each maybe followed by
    # .gz, .zst or .zstd), Parquet otherwise. Compression is recognised from a file's first bytes.
    # hybridmix: `paths` name earlier hybridmix output folders (globs allowed), whose data/ rows of
    # this corpus's origin it reads, with their provenance and lineage (README, "Generational mixes").
    format: Literal["parquet", "jsonl", "hybridmix"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _carried_mapping(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("format") != "hybridmix":
            return data
        for key, preset in CARRIED_MAPPING.items():
            given = data.get(key)
            if isinstance(given, BaseModel):
                given = given.model_dump(exclude_none=True)
            if given is None or given == preset:
                continue
            if key == "columns" and isinstance(given, dict) and all(preset.get(k) == v for k, v in given.items()):
                continue
            raise ValueError(f"{key}: a format: hybridmix corpus reads hybridmix's own columns "
                             f"({_preset_text(key, preset)}); leave {key} out")
        for key, why in _NOT_CARRIED.items():
            if data.get(key):
                raise ValueError(f"{key}: not with format: hybridmix ({why})")
        if isinstance(data.get("defaults"), dict) and data["defaults"].get("generation") is not None:
            raise ValueError("defaults.generation: not with format: hybridmix (every row of an earlier output "
                             "has its generation)")
        return {**data, **CARRIED_MAPPING}

    @property
    def carried(self) -> bool:
        """Whether this corpus reads earlier hybridmix outputs."""
        return self.format == "hybridmix"

    @model_validator(mode="after")
    def _check_generation(self) -> CorpusConfig:
        gen = self.defaults.generation
        if self.origin is Origin.HUMAN and gen not in (None, 0):
            raise ValueError(f"defaults.generation: human text has generation 0, got {gen}")
        if self.origin is Origin.SYNTHETIC and gen == 0:
            raise ValueError("defaults.generation: synthetic text has generation >= 1, got 0")
        for column in self.kept_columns.values():
            if column == self.text_column:
                raise ValueError(f"keep_columns: {column!r} is the text column; it is always kept")
        return self

    @property
    def kept_columns(self) -> dict[str, str]:
        """`meta` key -> input column of each kept column."""
        if isinstance(self.keep_columns, dict):
            return dict(self.keep_columns)
        return {column: column for column in self.keep_columns}

    @property
    def default_generation(self) -> int:
        if self.defaults.generation is not None:
            return self.defaults.generation
        return 0 if self.origin is Origin.HUMAN else 1


def _preset_text(key: str, preset: Any) -> str:
    if isinstance(preset, dict):
        return ", ".join(f"{role} from {column}" for role, column in preset.items())
    return f"{key} {preset!r}"


class TokenizerConfig(_Model):
    """How `tokens` is counted. All are offline and deterministic.

    estimate (default): what a BPE tokenizer would count, estimated per script from the units
    of the text pass (README "Languages and scripts": 0.96-1.11 times the geometric mean of
    cl100k_base, o200k_base and DeepSeek-V3 in Chinese, Japanese, Korean, Russian and English);
    file: the exact count of a Hugging Face `tokenizer.json` at `path` (relative to the config
    file; needs the `tokenizers` package, `pip install 'hybridmix[tokenizers]'`; nothing is
    downloaded); words: units plus punctuation marks; whitespace: whitespace-separated words;
    bytes4: UTF-8 bytes / 4, rounded up.
    """

    kind: Literal["estimate", "file", "words", "whitespace", "bytes4"] = "estimate"
    path: str | None = None

    @model_validator(mode="after")
    def _check_path(self) -> TokenizerConfig:
        if (self.kind == "file") != (self.path is not None):
            raise ValueError("path: give a tokenizer.json path with kind: file, and only then")
        return self


class FilterSpec(_Model):
    """One quality filter, by registered name, with its parameters and scope.

    `params` is completed with every default of the filter (`schemas/filters.py`), so the
    resolved config names every parameter a run used.
    """

    name: str
    params: dict[str, float | int | str | bool | list[str] | None] = Field(default_factory=dict)
    origins: list[Origin] | None = None
    sources: list[str] | None = None
    mode: Literal["drop", "flag"] = "drop"

    @model_validator(mode="before")
    @classmethod
    def _complete_params(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return data
        model = FILTER_PARAMS.get(data["name"])
        if model is None:
            raise ValueError(f"name: unknown filter {data['name']!r}; registered: {', '.join(sorted(FILTER_PARAMS))}")
        params = data.get("params")
        try:
            full = model.model_validate({} if params is None else params).model_dump()
        except ValidationError as exc:
            problems = (_filter_param_problem(data["name"], model, item) for item in exc.errors(include_url=False))
            raise ValueError(f"params.{'; '.join(problems)}") from None
        return {**data, "params": full}

    @model_validator(mode="after")
    def _check_scope(self) -> FilterSpec:
        for key in ("origins", "sources"):
            if getattr(self, key) == []:
                raise ValueError(f"{key}: an empty list applies {self.name} to no document; leave {key} out "
                                 "to apply it to all, or leave the filter out")
        return self

    def same_rule(self, other: FilterSpec) -> bool:
        """Whether two specs run one filter with the same parameters on the same documents, in any mode."""
        return (self.name, self.params, self._scope()) == (other.name, other.params, other._scope())

    def _scope(self) -> tuple[frozenset[Origin], frozenset[str] | None]:
        # No origins is every origin: [human, synthetic] names the same documents.
        return (frozenset(self.origins if self.origins is not None else Origin),
                None if self.sources is None else frozenset(self.sources))


def _default_filters() -> list[FilterSpec]:
    """The measured defaults (README, "Quality filters"): rules that remove synthetic text an
    external judge likes less, and Gopher-style rules for human text. Rules that removed answers
    the judge liked as much (repeated n-grams and characters, truncation, prompt echo) only flag
    synthetic text; those that removed answers it liked better (mean word length, share of words
    with letters: code and math) do not judge it, since a flag lowers an answer's chance in
    selection. Parameters: the filters' own
    defaults in `schemas/filters.py`, unless given here."""
    synthetic, human = [Origin.SYNTHETIC], [Origin.HUMAN]
    return [
        FilterSpec(name="word_count"),
        FilterSpec(name="too_short", origins=synthetic),
        FilterSpec(name="refusal", params={"max_words": 100}, origins=synthetic),
        FilterSpec(name="duplicate_lines"),
        FilterSpec(name="repetition_loop", origins=synthetic),
        FilterSpec(name="template_markers", origins=synthetic),
        FilterSpec(name="mean_word_length", origins=human),
        FilterSpec(name="alpha_words", origins=human),
        # Judged from 50 words, Gopher's own length floor: a short formal text repeats its phrases.
        FilterSpec(name="repeated_ngrams", params={"min_words": 50}, origins=human),
        FilterSpec(name="char_repetition", origins=human),
        FilterSpec(name="ellipsis_lines", origins=human),
        FilterSpec(name="symbol_ratio", origins=human),
        FilterSpec(name="repeated_ngrams", origins=synthetic, mode="flag"),
        FilterSpec(name="char_repetition", origins=synthetic, mode="flag"),
        FilterSpec(name="truncated", origins=synthetic, mode="flag"),
        FilterSpec(name="prompt_echo", origins=synthetic, mode="flag"),
        FilterSpec(name="bullet_lines", mode="flag"),
    ]


class ScorerConfig(_Model):
    """The learned quality scorer: a `quality_score` in [0, 1] for every document of `origins`."""

    enabled: StrictBool = True
    # A scorer file written by `hybridmix train-scorer`, relative to the config file; default: the
    # scorer that ships with hybridmix (trained on AlpacaEval judge labels, README "Quality scores").
    path: str | None = None
    origins: list[Origin] = Field(default_factory=lambda: [Origin.SYNTHETIC], min_length=1)


class QualityConfig(_Model):
    enabled: StrictBool = True
    filters: list[FilterSpec] = Field(default_factory=_default_filters)
    scorer: ScorerConfig = ScorerConfig()

    @model_validator(mode="after")
    def _check_filters(self) -> QualityConfig:
        # One filter may run twice with other parameters or on other documents (the defaults drop
        # human text by `repeated_ngrams` and flag synthetic text by it); the same rule twice adds
        # nothing: a document the drop removes never shows the flag, and a second flag repeats the first.
        for i, spec in enumerate(self.filters):
            for j in range(i):
                if spec.same_rule(self.filters[j]):
                    raise ValueError(f"filters[{i}]: repeats filters[{j}] ({spec.name} with the same params, "
                                     "origins and sources); give one of them other params or scope, or leave it out")
        return self

    def scores(self, origin: Origin) -> bool:
        """Whether documents of this origin get a quality_score."""
        return self.enabled and self.scorer.enabled and origin in self.scorer.origins


class NearDedupConfig(_Model):
    """MinHash LSH near-duplicate detection over word n-grams of the normalized text.

    Defaults are measured (README, "Near-duplicate quality"): 256 permutations, an LSH shape
    chosen with false negatives weighted 49:1 over false positives (verification removes the
    extra candidates), and a verification cut two standard errors below the threshold.
    """

    enabled: StrictBool = True
    num_perm: StrictInt = Field(default=256, ge=8, le=1024)
    threshold: StrictFloat = Field(default=0.8, gt=0.0, lt=1.0)
    ngram: StrictInt = Field(default=5, ge=1, le=32)
    seed: StrictInt = Field(default=1, ge=0, lt=2**32)
    bands: StrictInt | None = Field(default=None, ge=1)
    rows: StrictInt | None = Field(default=None, ge=1)
    false_positive_weight: StrictFloat = Field(default=0.02, ge=0.0, le=1.0)
    verify: StrictBool = True
    # Pairs are kept when their signature similarity reaches this; None: threshold minus two
    # standard errors of the estimate, sqrt(t(1-t)/num_perm), so pairs that truly sit at the
    # threshold are not lost to estimation noise.
    verify_threshold: StrictFloat | None = Field(default=None, gt=0.0, le=1.0)
    # Buckets up to this size yield all their pairs; larger ones a star on their
    # smallest member plus a chain, which keeps the work linear in bucket size.
    all_pairs_bucket_limit: StrictInt = Field(default=64, ge=2)
    # Large-star/small-star rounds before what is left unfinished (long chains) is finished by one
    # union-find; the clusters are the same whatever the number. Each round is two shuffles, and
    # real text converges in two (measured at 200,000 documents): more only cost stages.
    max_cc_rounds: StrictInt = Field(default=3, ge=1, le=64)

    @model_validator(mode="after")
    def _check_bands(self) -> NearDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("bands and rows: give both or neither")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands: bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    @property
    def effective_verify_threshold(self) -> float:
        if self.verify_threshold is not None:
            return self.verify_threshold
        t = self.threshold
        return max(0.0, t - 2.0 * math.sqrt(t * (1.0 - t) / self.num_perm))


class DedupConfig(_Model):
    exact: StrictBool = True
    near: NearDedupConfig = NearDedupConfig()
    survivor: Literal["prefer_human", "longest", "lowest_id", "highest_quality"] = "prefer_human"
    # A synthetic near duplicate of its own parent (the document kept in its place): `drop` removes it
    # like any near duplicate; `keep` leaves it in the mix, for rephrasings meant to sit beside their
    # source. Exact copies of the parent are dropped either way.
    parent_copies: Literal["drop", "keep"] = "drop"
    # Earlier hybridmix outputs (folders, local or any Beam file system, relative to the config file):
    # new documents that duplicate one of their documents are removed, matched against their index/.
    against: list[str] = Field(default_factory=list)
    # The origins whose documents are matched against them: [synthetic] keeps a human corpus that
    # every day's run reads again in every day's mix, instead of removing it as published.
    against_origins: list[Origin] = Field(default_factory=lambda: [Origin.HUMAN, Origin.SYNTHETIC], min_length=1)

    @field_validator("against_origins")
    @classmethod
    def _distinct_origins(cls, value: list[Origin]) -> list[Origin]:
        if len(set(value)) != len(value):
            raise ValueError("name each origin once")
        return value


class CarryForwardConfig(_Model):
    """Accumulate, never replace: the mix keeps at least these shares of an earlier output's human data.

    Gerstgrasser et al. 2024: models trained on data that accumulates (real and earlier synthetic
    data) stay bounded in error; replacing it makes them collapse. Ratios are of the earlier
    output's figures in its manifest: human tokens in its data/ (copies counted, as there), and its
    human documents, of which the new mix must select this share from `format: hybridmix` corpora.
    """

    path: str  # the earlier output (relative to the config file, or any Beam file system)
    min_human_tokens: StrictFloat = Field(default=1.0, ge=0.0)
    min_human_documents: StrictFloat = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class GuardsConfig(_Model):
    """Limits against collapse-prone mixes; a violation stops the run before publishing."""

    max_synthetic_fraction: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    max_generation: StrictInt | None = Field(default=None, ge=0, le=127)
    min_human_tokens: StrictInt | None = Field(default=None, ge=0)
    # An earlier output (a path: the shorthand for ratios of 1) or {path, min_human_tokens, min_human_documents}.
    carry_forward: CarryForwardConfig | None = None


Selection = Literal["random", "top", "weighted"]


class SourceMixConfig(_Model):
    """One source's settings in the mixture (`mixture.sources.NAME`); unset keys follow the mixture's."""

    # Copies of a document this source may contribute at most; only sources short of their
    # quota are upsampled, so a cap on the small source is how to upsample just that one.
    max_repeats: StrictInt | None = Field(default=None, ge=1, le=1000)
    selection: Selection | None = None
    # Documents with a lower quality_score are not selected (counted as not_selected).
    min_score: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    flag_penalty: StrictFloat | None = Field(default=None, ge=0.0, le=20.0)


class MixtureConfig(_Model):
    """Target composition of the output. Fractions are of `unit` (tokens or documents).

    Either `targets` (a fraction per origin, split inside an origin by `source_weights` or by
    size) or `weights` (one weight per source, across origins). Without explicit weights,
    sources weigh by size, or by size^(1/temperature) when a temperature is set.
    """

    unit: Literal["tokens", "documents"] = "tokens"
    targets: dict[Origin, Annotated[StrictFloat, Field(ge=0.0, le=1.0)]] | None = None
    source_weights: dict[str, Annotated[StrictFloat, Field(gt=0.0)]] = Field(default_factory=dict)
    weights: dict[str, Annotated[StrictFloat, Field(ge=0.0)]] | None = None
    temperature: StrictFloat | None = Field(default=None, gt=0.0)
    total_tokens: StrictInt | None = Field(default=None, gt=0)
    total_documents: StrictInt | None = Field(default=None, gt=0)
    max_repeats: StrictInt = Field(default=1, ge=1, le=1000)
    on_infeasible: Literal["fail", "shrink"] = "fail"
    validation_fraction: StrictFloat = Field(default=0.0, ge=0.0, lt=1.0)
    guards: GuardsConfig = GuardsConfig()
    # Which documents a source contributes when it has more than its quota, per origin:
    # random (seeded hash), top (highest quality_score first) or weighted (the chance rises with
    # the score: weight exp(selection_sharpness * z), z the score as a normal quantile, sampled
    # without replacement). Under top and weighted, a document with quality_flags competes as if its
    # score were `flag_penalty` standard deviations (of that normal quantile) lower; 0 ignores flags.
    # Out of fold on the shared labels, sharpness 3 with penalty 3 was the setting that met both
    # selection targets at 2 % and 5 % of the pool (README "Quality-aware selection").
    selection: dict[Origin, Selection] = Field(default_factory=dict)
    selection_sharpness: StrictFloat = Field(default=3.0, gt=0.0, le=20.0)
    flag_penalty: StrictFloat = Field(default=3.0, ge=0.0, le=20.0)
    sources: dict[str, SourceMixConfig] = Field(default_factory=dict)
    # Per origin, the fraction of its share per script (the `script` column, ISO 15924: Hani for
    # Chinese, Jpan Japanese, Hang Korean, Latn English and other Latin-script languages, ...),
    # e.g. {human: {Hani: 0.6, Latn: 0.4}}. Documents in a script not listed are not selected.
    scripts: dict[Origin, dict[str, Annotated[StrictFloat, Field(ge=0.0, le=1.0)]]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> MixtureConfig:
        if (self.targets is None) == (self.weights is None):
            given = "both" if self.targets is not None else "neither"
            raise ValueError(f"targets: give either targets (per origin) or weights (per source); this config "
                             f"gives {given}")
        if self.targets is not None:
            total = sum(self.targets.values())
            if not self.targets or not math.isclose(total, 1.0, abs_tol=1e-9):
                raise ValueError(f"targets: fractions must sum to 1, they sum to {total:.12g}")
            limit = self.guards.max_synthetic_fraction
            wanted = self.targets.get(Origin.SYNTHETIC, 0.0)
            if limit is not None and wanted > limit + 1e-12:
                raise ValueError(
                    f"guards.max_synthetic_fraction: target synthetic fraction {wanted:g} "
                    f"exceeds the guard {limit:g}")
        else:
            if self.source_weights:
                raise ValueError("source_weights: only with targets; with weights, weigh sources there")
            if not any(w > 0 for w in self.weights.values()):
                raise ValueError("weights: at least one source needs a weight above 0")
        for origin, fractions in self.scripts.items():
            where = f"scripts.{origin.value}"
            if self.targets is None:
                raise ValueError(f"{where}: script fractions need targets per origin, not weights")
            unknown = sorted(set(fractions) - set(SCRIPTS))
            if unknown:
                raise ValueError(f"{where}: unknown script {unknown[0]!r} (ISO 15924 codes: {', '.join(SCRIPTS)})")
            total = sum(fractions.values())
            if not fractions or not math.isclose(total, 1.0, abs_tol=1e-9):
                raise ValueError(f"{where}: fractions must sum to 1, they sum to {total:.12g}")
        if self.temperature is not None and (self.source_weights or self.weights):
            raise ValueError("temperature: weights sources by size; it cannot be combined with explicit weights")
        if self.total_tokens is not None and self.total_documents is not None:
            raise ValueError("total_tokens and total_documents: give at most one")
        if self.total_tokens is not None and self.unit != "tokens":
            raise ValueError("total_tokens: the unit is documents; use total_documents")
        if self.total_documents is not None and self.unit != "documents":
            raise ValueError("total_documents: the unit is tokens; use total_tokens")
        return self

    @property
    def total(self) -> int | None:
        return self.total_tokens if self.unit == "tokens" else self.total_documents

    def repeat_cap(self, source: str) -> int:
        own = self.sources.get(source)
        return own.max_repeats if own is not None and own.max_repeats is not None else self.max_repeats

    def selection_of(self, source: str, origin: Origin) -> Selection:
        own = self.sources.get(source)
        if own is not None and own.selection is not None:
            return own.selection
        return self.selection.get(origin, "random")

    def scripts_of(self, origin: Origin | str) -> dict[str, float] | None:
        """The script fractions of an origin's share, or None when its sources are not split by script."""
        return self.scripts.get(Origin(origin))

    def min_score_of(self, source: str) -> float | None:
        own = self.sources.get(source)
        return own.min_score if own is not None else None

    def flag_penalty_of(self, source: str) -> float:
        own = self.sources.get(source)
        return own.flag_penalty if own is not None and own.flag_penalty is not None else self.flag_penalty


class IndicatorsConfig(_Model):
    """Collapse indicators of the output, measured on a deterministic sample per origin and source."""

    enabled: StrictBool = True
    sample_documents: StrictInt = Field(default=2000, ge=10, le=1_000_000)


class OutputConfig(_Model):
    """Where and how the mixture is written. A shard holds about `rows_per_shard` rows, or
    about `bytes_per_shard` bytes of (uncompressed) text when that is set."""

    path: str | None = None
    rows_per_shard: StrictInt = Field(default=100_000, ge=1)
    bytes_per_shard: StrictInt | None = Field(default=None, ge=1)
    row_group_rows: StrictInt = Field(default=10_000, ge=1)
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    # ledger/: one row per input row with its fate and why (README, "Why is a document not in my mix?")
    ledger: bool = True
    # index/: what a later run's `dedup.against` needs of this run's documents (README, "Daily runs")
    index: bool = True


class IngestConfig(_Model):
    """What reading and validating input rows needs: the ingest stages' view of a run's config."""

    corpora: tuple[CorpusConfig, ...]
    tokenizer: TokenizerConfig
    read_batch_rows: StrictInt
    read_slice_bytes: StrictInt
    max_text_bytes: StrictInt
    on_bad_file: Literal["fail", "quarantine"]


class EvalSetConfig(_Model):
    """An evaluation set whose items must stay out of the mix."""

    name: Name
    paths: list[str] = Field(min_length=1)  # Parquet or JSON Lines files or globs, relative to the config
    text_column: str = "text"
    id_column: str | None = None  # default: <file name>:<row>
    # Default: JSON Lines for names ending in .jsonl, .ndjson or .json, Parquet otherwise.
    format: Literal["parquet", "jsonl"] | None = None


class DecontaminateConfig(_Model):
    """Documents sharing word n-grams with an evaluation item (README, "Decontamination")."""

    against: list[EvalSetConfig] = Field(default_factory=list)
    # n-gram length in words of the compiled text pass (13: GPT-3's and NeMo Curator's choice)
    ngram: StrictInt = Field(default=13, ge=3, le=64)
    # A document is contaminated by an item when it holds at least this many of the item's
    # n-grams (an integer), or this share of them (a number below 1).
    min_matches: StrictInt | StrictFloat = 1
    mode: Literal["drop", "flag"] = "drop"
    # Items (or what is left of them once boilerplate is cut) shorter than `ngram` words are
    # matched whole from this many words; shorter ones are not indexed (the manifest counts them).
    min_item_words: StrictInt = Field(default=4, ge=1)
    # An n-gram found in more items than this is boilerplate the items share, cut out of them.
    max_items_per_ngram: StrictInt = Field(default=3, ge=1)
    # The index is a side input every worker holds, with its lookup table: 70 to 110 bytes per
    # n-gram. Past this bound the run stops with a config error rather than exhaust memory.
    max_index_ngrams: StrictInt = Field(default=10_000_000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DecontaminateConfig:
        names = [s.name for s in self.against]
        if len(set(names)) != len(names):
            raise ValueError("decontaminate.against: evaluation set names must be unique")
        if isinstance(self.min_matches, bool) or not (
                (isinstance(self.min_matches, int) and self.min_matches >= 1)
                or (isinstance(self.min_matches, float) and 0.0 < self.min_matches < 1.0)):
            raise ValueError("decontaminate.min_matches: an integer >= 1 (n-grams) or a share in (0, 1)")
        if self.min_item_words > self.ngram:
            raise ValueError(f"decontaminate.min_item_words ({self.min_item_words}) must not exceed "
                             f"decontaminate.ngram ({self.ngram})")
        return self

    def matched(self, count: np.ndarray, share: np.ndarray) -> np.ndarray:
        """Which documents are contaminated, from their best item's matching n-grams."""
        if isinstance(self.min_matches, int):
            return count >= self.min_matches
        return (count > 0) & (share >= self.min_matches)

    def threshold(self) -> str:
        if isinstance(self.min_matches, int):
            return f">= {self.min_matches} {self.ngram}-grams"
        return f">= {self.min_matches:g} of the item's {self.ngram}-grams"


class PipelineConfig(_Model):
    """The root of a run's configuration."""

    corpora: list[CorpusConfig] = Field(min_length=1)
    mixture: MixtureConfig
    tokenizer: TokenizerConfig = TokenizerConfig()
    quality: QualityConfig = QualityConfig()
    dedup: DedupConfig = DedupConfig()
    output: OutputConfig = OutputConfig()
    indicators: IndicatorsConfig = IndicatorsConfig()
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    seed: StrictInt = Field(default=0, ge=0, lt=2**63)
    # What a bad input does: stop the run naming the file (fail), or go to rejects/ with the
    # reason and let the run go on (quarantine). Bad inputs: unreadable, empty, corrupt or
    # non-Parquet files, truncated or corrupt compressed JSON Lines, files missing a configured
    # column, and ids that repeat. A malformed JSON Lines line is a bad row: rejects/ in both modes.
    on_bad_file: Literal["fail", "quarantine"] = "fail"
    # Number of hash partitions of every keyed stage; the unit of parallelism on a
    # distributed runner. More partitions than workers keeps them all busy.
    partitions: StrictInt = Field(default=16, ge=1, le=4096)
    read_batch_rows: StrictInt = Field(default=8192, ge=16, le=1_000_000)
    # A Parquet row group larger than this (uncompressed, as its footer says) is read as up to 4
    # work items, so one big row group is spread over workers (see InputFile.units); the
    # in-process runner, one worker, reads whole row groups (pipelines.build.read_as).
    read_slice_bytes: StrictInt = Field(default=32 << 20, ge=1)
    # Longer texts go to rejects/ (ingest_too_large): one document must not decide a run's memory.
    max_text_bytes: StrictInt = Field(default=16_000_000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> PipelineConfig:
        names = [c.name for c in self.corpora]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(f"corpora[{i}].name: {name!r} is used by more than one corpus")
            seen.add(name)
        origins = {c.origin for c in self.corpora}
        mixture = self.mixture
        if mixture.targets is not None:
            for origin, fraction in mixture.targets.items():
                if fraction > 0 and origin not in origins:
                    raise ValueError(
                        f"mixture.targets.{origin.value}: target {fraction:g} but no corpus has "
                        f"origin {origin.value}")
            for origin in origins:
                if origin not in mixture.targets:
                    raise ValueError(
                        f"mixture.targets: corpora of origin {origin.value} exist but have no target "
                        f"(set mixture.targets.{origin.value}, 0 to leave them out)")
        for name in mixture.source_weights:
            if name not in seen:
                raise ValueError(f"mixture.source_weights.{name}: no corpus has that name")
        if mixture.source_weights:
            for origin in origins:
                names = [c.name for c in self.corpora if c.origin is origin]
                named = [n for n in names if n in mixture.source_weights]
                if named and len(named) != len(names):
                    missing = sorted(set(names) - set(named))
                    raise ValueError(
                        f"mixture.source_weights: weigh every {origin.value} source or none; "
                        f"missing {', '.join(missing)}")
        if mixture.weights is not None:
            for name in mixture.weights:
                if name not in seen:
                    raise ValueError(f"mixture.weights.{name}: no corpus has that name")
            missing = sorted(seen - set(mixture.weights))
            if missing:
                raise ValueError(f"mixture.weights: every corpus needs a weight (0 leaves it out); "
                                 f"missing {', '.join(missing)}")
        for name in mixture.sources:
            if name not in seen:
                raise ValueError(f"mixture.sources.{name}: no corpus has that name")
        for corpus in self.corpora:
            uses_scores = (mixture.selection_of(corpus.name, corpus.origin) != "random"
                           or mixture.min_score_of(corpus.name) is not None)
            if uses_scores and not self.quality.scores(corpus.origin):
                raise ValueError(
                    f"mixture: source {corpus.name!r} is selected by quality_score, but no scorer scores "
                    f"{corpus.origin.value} text (quality.scorer)")
        origin_of = {c.name: c.origin for c in self.corpora}
        for i, spec in enumerate(self.quality.filters):
            for name in spec.sources or []:
                if name not in seen:
                    raise ValueError(
                        f"quality.filters[{i}].sources: no corpus named {name!r}")
            if spec.sources is not None and spec.origins is not None and not any(
                    origin_of[name] in spec.origins for name in spec.sources):
                named = ", ".join(f"{name} ({origin_of[name].value})" for name in spec.sources)
                raise ValueError(
                    f"quality.filters[{i}].sources: {spec.name} applies to "
                    f"{' and '.join(o.value for o in spec.origins)} text only, and none of {named} holds any: "
                    "it applies to no document")
        return self

    @property
    def ingest(self) -> IngestConfig:
        return IngestConfig(corpora=tuple(self.corpora), tokenizer=self.tokenizer,
                            read_batch_rows=self.read_batch_rows, read_slice_bytes=self.read_slice_bytes,
                            max_text_bytes=self.max_text_bytes,
                            on_bad_file=self.on_bad_file)

    def with_overrides(self, *, seed: int | None = None, output_path: str | None = None,
                       against: list[str] = ()) -> PipelineConfig:
        """A copy with CLI overrides applied and validated again; `against` adds to dedup.against."""
        data = self.model_dump(mode="json")
        if seed is not None:
            data["seed"] = seed
        if output_path is not None:
            data["output"]["path"] = output_path
        data["dedup"]["against"] = [*data["dedup"]["against"], *against]
        return parse_config(data, origin="command line")

    def digest(self) -> str:
        """Hash of everything that shapes the output (the output location does not)."""
        payload = self.model_dump(mode="json")
        payload["output"].pop("path", None)
        if not self.decontaminate.against:  # unused: runs before it existed keep their digest
            payload.pop("decontaminate")
        for corpus in payload["corpora"]:
            if corpus["format"] is None:  # as above: the default leaves earlier runs' digests alone
                corpus.pop("format")
        if self.dedup.parent_copies == "drop":  # as above
            payload["dedup"].pop("parent_copies")
        if payload["mixture"]["guards"]["carry_forward"] is None:  # as above
            payload["mixture"]["guards"].pop("carry_forward")
        if payload["output"]["index"]:  # as above
            payload["output"].pop("index")
        if not payload["dedup"]["against"]:  # as above
            payload["dedup"].pop("against")
        if set(self.dedup.against_origins) == set(Origin):  # as above
            payload["dedup"].pop("against_origins")
        # The star rounds set how much of the clustering a union-find finishes, never its result.
        payload["dedup"]["near"].pop("max_cc_rounds")
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's mark for a dict key that failed (`targets: {other: 0.5}`)
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxlist, _SHORT_REPR.maxdict = 2, 4, 4
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 60


def format_validation_error(error: ValidationError) -> str:
    """One line per problem: `key.path: message`, joined with '; '."""
    return "; ".join(_problem(item) for item in error.errors(include_url=False))


def _problem(item: Any) -> str:
    loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    msg = item["msg"]
    if item["type"] == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        # Cross-field validators name their key themselves, relative to the model.
        head, sep, tail = msg.partition(": ")
        if sep and " " not in head:
            loc = loc + (head,)
            msg = tail
    elif "input" in item and item["type"] not in ("missing",):
        msg = f"{msg} (got {_shown(item['input'])})"
    return f"{_key_path(loc)}: {msg}"


def _shown(value: Any) -> str:
    # A bounded repr: a value may be huge (a YAML alias bomb expands to billions of items).
    shown = _SHORT_REPR.repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


_OUT_OF_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _filter_param_problem(name: str, model: type[FilterParams], item: Any) -> str:
    """A filter parameter's problem; one out of bounds, or against another, names the filter and the rule."""
    param = item["loc"][0] if item["loc"] else None
    bounds = describe_bounds(model, param) if item["type"] in _OUT_OF_BOUNDS and isinstance(param, str) else None
    if bounds is not None:
        return f"{param}: {name} needs {bounds} (got {_shown(item['input'])})"
    if item["type"] == "value_error" and not item["loc"]:
        head, _, rule = item["msg"].removeprefix("Value error, ").partition(": ")
        return f"{head}: {name} needs {rule}"
    return _problem(item)


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML (no tags that build objects) that also refuses repeated keys."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_config(data: Any, *, origin: str = "config") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {format_validation_error(exc)}") from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML (or JSON) config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    return parse_config(data, origin=str(path))
