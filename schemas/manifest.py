"""manifest.json: what went in, where every input row ended up, what came out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FORMAT = 1

COUNT_FIELDS = (
    "read",
    "rejected",
    "filtered",
    "exact_duplicates",
    "near_duplicates",
    "not_selected",
    "selected",
)


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceCounts(_M):
    """Fates of one source's input rows. `read` equals the sum of the six fates."""

    read: int = 0
    rejected: int = 0
    filtered: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    not_selected: int = 0
    selected: int = 0
    written: int = 0

    @property
    def accounted(self) -> int:
        return sum(getattr(self, name) for name in COUNT_FIELDS[1:])

    @property
    def balanced(self) -> bool:
        return self.read == self.accounted


class CarriedInput(_M):
    """What a `format: hybridmix` corpus took of a data file of an earlier output. The file's `rows`
    are `taken` (read, and accounted for in `counts`) + `copies_skipped` (upsampled copies, not
    documents) + `other_origin` (documents of the other origin, left to a corpus of that origin)."""

    output: str
    run_id: str
    taken: int
    copies_skipped: int
    other_origin: int


class InputFile(_M):
    """One input file. A quarantined file says why; its rows are unknown if it could not be read."""

    path: str
    source: str
    size_bytes: int | None
    rows: int | None
    sha256: str | None
    status: str = "ok"  # ok | quarantined | partly_quarantined (row groups that cannot be read)
    problem: str | None = None
    format: str = "parquet"  # parquet | jsonl | jsonl.gz | jsonl.zst | hybridmix
    carried: CarriedInput | None = None  # format hybridmix only


class OutputFile(_M):
    path: str
    rows: int
    size_bytes: int


class MixtureGroup(_M):
    """Figures for one origin or one source. Units follow `MixtureReport.unit`."""

    available_tokens: int
    available_documents: int
    target_fraction: float
    achieved_fraction: float
    fraction_error: float
    target_units: float
    selected_units: int
    selected_tokens: int
    selected_documents: int
    written_rows: int
    repeats: float = Field(description="written rows / selected distinct documents")
    # Sources only: how the source was selected, its repeat cap, score floor and flag penalty.
    selection: str | None = None
    max_repeats: int | None = None
    min_score: float | None = None
    flag_penalty: float | None = None


class ScriptGroup(_M):
    """What the mixture took of one origin in one script (`script` column). Fractions are of the whole
    mixture; target and error are null where `mixture.scripts` sets no target for the origin."""

    target_fraction: float | None
    achieved_fraction: float
    fraction_error: float | None
    selected_units: int
    selected_tokens: int
    selected_documents: int
    written_rows: int


class MixtureReport(_M):
    unit: str
    targets: dict[str, float]
    # Per origin, per script: see ScriptGroup.
    scripts: dict[str, dict[str, ScriptGroup]]
    achieved: dict[str, float]
    total_units: int
    budget: str
    max_repeats: int
    origins: dict[str, MixtureGroup]
    sources: dict[str, MixtureGroup]


class Manifest(_M):
    format_version: int = MANIFEST_FORMAT
    run_id: str
    config_digest: str
    seed: int
    started_at: str
    finished_at: str
    versions: dict[str, str]
    config: dict[str, Any]
    base_dir: str
    inputs: list[InputFile]
    counts: dict[str, SourceCounts]
    totals: SourceCounts
    mixture: MixtureReport
    dedup: dict[str, Any]
    quality: dict[str, Any]
    # null without decontaminate.against; else per evaluation set: files, index, matches
    decontamination: dict[str, Any] | None = None
    # How `tokens` was counted: kind, and for kind file the tokenizer file and its sha256.
    tokens: dict[str, Any] = Field(default_factory=dict)
    collapse: dict[str, Any]
    outputs: dict[str, list[OutputFile]]
    # null unless a corpus reads earlier outputs (format: hybridmix) or guards.carry_forward is set: per
    # origin, the mix's documents and tokens carried from earlier runs (per run) and new; the guard's figures.
    carried: dict[str, Any] | None = None
