"""JSON Lines inputs (plain, gzip or zstd): scan a file once when planning, read its records as Arrow.

A record is a line that holds more than JSON whitespace; a blank line is not a record. A record's
row (`source_row`) is its 0-based index among the file's records: the row number pyarrow's JSON
reader (which `datasets` uses) gives it. Messages about a record also name its 1-based line. Compression is recognised from the file's first bytes, whatever its name.

Planning scans every file once, streaming: it counts records, hashes the file's bytes and, for an
uncompressed file, cuts it into chunks of about `CHUNK_BYTES` at line ends, which workers read on
their own by byte offset (Parquet's row groups play that part for Parquet). A compressed file is
one chunk: gzip and zstd streams cannot be entered in the middle, and re-decompressing from the
start to reach chunk k would make reading a file of k chunks cost k^2/2 chunks.

Values are mapped to the Arrow types the Parquet path reads, so everything after ingest is the same:
the text must be a JSON string; id, prompt and provenance values become strings as Arrow casts them
(numbers, `true`/`false`) or JSON (arrays, objects); `generation` must be an integer; `keep_columns`
go into `meta` as the values were written. A key missing from a record reads as null (writers often
leave out null fields), except the text key (`ingest_missing_column`).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa

from hybridmix.schemas.reasons import RejectReason
from hybridmix.transforms.storage import is_remote, open_raw

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
_BOM = codecs.BOM_UTF8

# About 64 MiB of lines per work item: large enough that per-item costs vanish, small enough to
# spread a file over workers (half the row group parquet-mr writes by default).
CHUNK_BYTES = 64 << 20
_BLOCK_BYTES = 1 << 20
# Records parsed when planning, to learn a file's keys (JSON Lines has no schema to read).
SNIFF_RECORDS = 100
_SHOWN_CHARS = 4096

_WHITESPACE = b" \t\r"
# A blank line after a newline: JSON whitespace only, up to the next newline.
_BLANK_AFTER_NEWLINE = re.compile(rb"\n[ \t\r]*(?=\n)")
_MISSING = object()


def is_jsonl_name(path: str) -> bool:
    """Whether a file name says JSON Lines: .jsonl, .ndjson or .json, maybe then .gz, .zst or .zstd."""
    name = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.endswith(JSONL_SUFFIXES)


def named_compression(path: str) -> str | None:
    name = path.lower()
    return next((c for s, c in COMPRESSION_SUFFIXES.items() if name.endswith(s)), None)


def sniff_compression(head: bytes) -> str | None:
    return next((c for magic, c in _MAGIC.items() if head.startswith(magic)), None)


class _HashingReader:
    """A raw file seen through `read` only, hashing and counting what passes (for pyarrow's decompressors)."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self._raw = raw
        self._digest = digest
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        block = self._raw.read(n)
        self._digest.update(block)
        return block

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


# Blocks read up to where a broken compressed stream breaks: the decompressor returns nothing of the
# block it breaks in.
_BREAK_BLOCK_BYTES = 256


def _blocks(stream: Any, limit: int | None = None, size: int = _BLOCK_BYTES) -> Iterator[bytes]:
    """Blocks of a stream (a Python file or a pyarrow stream), at most `limit` bytes in all."""
    left = limit
    while left is None or left > 0:
        block = stream.read(size if left is None else min(size, left))
        if not block:
            return
        if left is not None:
            left -= len(block)
        yield bytes(block)


def decompressed_bytes(data: bytes) -> bytes:
    """A whole file's bytes, decompressed when its first bytes say gzip or zstd."""
    compression = sniff_compression(data[:4])
    return data if compression is None else _decompressed(pa.BufferReader(data), compression).read()


def _decompressed(raw: IO[bytes] | Any, compression: str | None) -> Any:
    if compression is None:
        return raw
    source = raw if isinstance(raw, pa.NativeFile) else pa.PythonFile(raw, mode="r")
    return pa.CompressedInputStream(source, compression)


def _lines_of(blocks: Iterator[bytes], strip_bom: bool) -> Iterator[bytes]:
    """Whole lines (without their newline; the last one may lack it) of a run of blocks."""
    parts: list[bytes] = []
    first = strip_bom
    for block in blocks:
        if first:
            first = False
            if block.startswith(_BOM):
                block = block[len(_BOM):]
        end = block.rfind(b"\n")
        if end < 0:
            parts.append(block)  # a line longer than a block: joined once, when it ends
            continue
        parts.append(block[:end])
        lines = b"".join(parts).split(b"\n")
        parts = [block[end + 1:]]
        yield from lines
    tail = b"".join(parts)
    if tail:
        yield tail


def _records(blocks: Iterator[bytes], strip_bom: bool, first_line: int) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of every record (non-blank line) of a run of blocks whose first line
    follows line `first_line`."""
    for number, line in enumerate(_lines_of(blocks, strip_bom), first_line + 1):
        if line.strip(_WHITESPACE):
            yield number, line


def records_of(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of every record of a whole file's decompressed bytes."""
    return _records(iter([data]), strip_bom=True, first_line=0)


def is_blank(line: bytes) -> bool:
    return not line.strip(_WHITESPACE)


# ---- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """Whole lines of an uncompressed file, read on their own: bytes [start, end), 0-based first line."""

    start: int
    end: int | None  # None: to the end of the file
    first_line: int
    records: int


@dataclass(frozen=True)
class Scan:
    """What one pass over a JSON Lines file learnt."""

    compression: str | None
    records: int
    lines: int
    data_bytes: int  # bytes of the decompressed lines: an upper bound of the text they hold
    chunks: tuple[Chunk, ...]
    sha256: str  # of the file's bytes as stored
    keys: tuple[str, ...]  # every key of the first SNIFF_RECORDS records that are objects, in order seen
    objects: int  # how many of those records were JSON objects
    sniffed: int  # how many records were parsed to learn the keys
    first_problem: str | None  # why the first sniffed record that is not an object is not
    error: str | None = None  # the decompressor's or the file system's error: the file is unusable


class _Sniffer:
    """Keys of a file's first records, and what is wrong with the first one that is not an object."""

    def __init__(self) -> None:
        self.keys: dict[str, None] = {}
        self.objects = 0
        self.sniffed = 0
        self.first_problem: str | None = None

    def wants(self) -> bool:
        return self.sniffed < SNIFF_RECORDS

    def add(self, line: bytes, line_number: int) -> None:
        self.sniffed += 1
        problem = None
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problem = f"line {line_number}: {_malformed(line, exc)[1]}"
        else:
            if isinstance(value, dict):
                self.objects += 1
                self.keys.update(dict.fromkeys(value))
            else:
                problem = f"line {line_number}: {_not_object(value)}"
        if problem and self.first_problem is None:
            self.first_problem = problem


def scan_file(path: str, chunk_bytes: int = CHUNK_BYTES, block_bytes: int = _BLOCK_BYTES) -> Scan:
    """Count records, cut chunks, hash the bytes and learn the keys of a JSON Lines file, in one pass.

    Raises OSError when the file cannot be opened; a stream that breaks part way (a truncated or
    corrupt gzip or zstd file) gives a Scan with `error` set and the records counted before it.
    """
    digest = hashlib.sha256()
    with open_raw(path) as head:
        compression = sniff_compression(head.read(4))
    counter = _LineCounter(chunk_bytes if compression is None else None)
    sniffer = _Sniffer()
    error = None
    read = 0  # decompressed bytes read whole
    with open_raw(path) as raw:
        reader = _HashingReader(raw, digest)
        try:
            stream = _decompressed(reader, compression)
            for block in _blocks(stream, size=block_bytes):
                read += len(block)
                counter.add(block, sniffer)
            counter.finish(sniffer)
            # A decompressor may stop before the last bytes; the checksum is of the whole file.
            for _ in _blocks(reader):
                pass
        except (OSError, pa.ArrowException) as exc:
            error = str(exc)
    if error is not None and compression is not None:
        counter, sniffer = _before_break(path, compression, read, block_bytes)
    return Scan(compression=compression, records=counter.records, lines=counter.lines,
                data_bytes=counter.offset, chunks=tuple(counter.chunks), sha256=digest.hexdigest(),
                keys=tuple(sniffer.keys), objects=sniffer.objects, sniffed=sniffer.sniffed,
                first_problem=sniffer.first_problem, error=error)


def _before_break(path: str, compression: str, read: int, block_bytes: int) -> tuple[_LineCounter, _Sniffer]:
    """The records of a compressed file that breaks (cut short, corrupt) before its break: the pass
    that found the break lost the block it was reading, whose start the decompressor had (a 300-record
    gzip file cut at two thirds, all in the first 1 MiB block, counted no record before the break).
    The `read` bytes read whole are read again, then small blocks up to the break."""
    counter, sniffer = _LineCounter(None), _Sniffer()
    with open_raw(path) as raw:
        stream = _decompressed(raw, compression)
        try:
            for block in _blocks(stream, limit=read, size=block_bytes):
                counter.add(block, sniffer)
            for block in _blocks(stream, size=_BREAK_BLOCK_BYTES):
                counter.add(block, sniffer)
        except (OSError, pa.ArrowException):
            pass  # the break; the line it cuts is not a record
    return counter, sniffer


class _LineCounter:
    """Records and lines of a stream fed block by block; chunks at line ends every `chunk_bytes`."""

    def __init__(self, chunk_bytes: int | None) -> None:
        self._chunk_bytes = chunk_bytes
        self._parts: list[bytes] = []
        self._first = True
        self.offset = 0  # bytes of whole lines seen (a BOM included: chunk offsets are file offsets)
        self.lines = 0
        self.records = 0
        self.chunks: list[Chunk] = []
        self._chunk = (0, 0, 0)  # start offset, first line, records before it

    def add(self, block: bytes, sniffer: _Sniffer) -> None:
        if self._first and block:
            self._first = False
            if block.startswith(_BOM):
                self.offset += len(_BOM)
                block = block[len(_BOM):]
        end = block.rfind(b"\n")
        if end < 0:
            self._parts.append(block)
            return
        self._parts.append(block[: end + 1])
        whole = b"".join(self._parts)
        self._parts = [block[end + 1:]]
        if sniffer.wants():
            self._sniff(whole, sniffer)
        # Prefixed with a newline so that the first line is judged like the others.
        marked = b"\n" + whole
        done = 0
        while self._chunk_bytes is not None:
            # A chunk ends with the line that holds its `chunk_bytes`-th byte.
            need = max(1, self._chunk[0] + self._chunk_bytes - self.offset)
            if need > len(whole) - done:
                break
            cut = whole.index(b"\n", done + need - 1) + 1
            self._count(whole, marked, done, cut)
            self._cut(self.offset)
            done = cut
        self._count(whole, marked, done, len(whole))

    def _count(self, whole: bytes, marked: bytes, lo: int, hi: int) -> None:
        """Count the lines of whole[lo:hi] (whole lines); `marked` is whole after one newline."""
        lines = whole.count(b"\n", lo, hi)
        # In `marked` the newline before whole[lo] is at lo, and the one ending whole[hi - 1] at hi.
        blank = len(_BLANK_AFTER_NEWLINE.findall(marked, lo, hi + 1))
        self.lines += lines
        self.records += lines - blank
        self.offset += hi - lo

    def finish(self, sniffer: _Sniffer) -> None:
        tail = b"".join(self._parts)
        if tail:
            if sniffer.wants() and not is_blank(tail):
                sniffer.add(tail, self.lines + 1)
            self.lines += 1
            self.records += 0 if is_blank(tail) else 1
            self.offset += len(tail)
        if self._chunk_bytes is None:
            self.chunks = [Chunk(0, None, 0, self.records)]
        elif self.offset > self._chunk[0] or not self.chunks:
            self._cut(None)

    def _cut(self, end: int | None) -> None:
        start, first_line, before = self._chunk
        self.chunks.append(Chunk(start, end, first_line, self.records - before))
        if end is not None:
            self._chunk = (end, self.lines, self.records)

    def _sniff(self, whole: bytes, sniffer: _Sniffer) -> None:
        for k, line in enumerate(whole.split(b"\n")[:-1]):
            if not sniffer.wants():
                return
            if not is_blank(line):
                sniffer.add(line, self.lines + k + 1)


# ---- reading -------------------------------------------------------------------------------------


def open_chunk(path: str, compression: str | None, chunk: Chunk, block_bytes: int = _BLOCK_BYTES
               ) -> Iterator[bytes]:
    """The decompressed blocks of one chunk."""
    if compression is None:
        with open_raw(path) as raw:
            raw.seek(chunk.start)
            yield from _blocks(raw, None if chunk.end is None else chunk.end - chunk.start, block_bytes)
        return
    if not is_remote(path):  # pyarrow reads a local file itself, without a Python file object
        with pa.input_stream(path, compression=compression) as stream:
            yield from _blocks(stream, size=block_bytes)
        return
    with open_raw(path) as raw:
        yield from _blocks(_decompressed(raw, compression), size=block_bytes)


def iter_records(path: str, compression: str | None, chunk: Chunk, block_bytes: int = _BLOCK_BYTES
                 ) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of every record of a chunk, in file order."""
    yield from _records(open_chunk(path, compression, chunk, block_bytes), chunk.start == 0, chunk.first_line)


@dataclass(frozen=True)
class ParsedLines:
    """What parsing a batch of records found beside the values, row-aligned with its batch."""

    lines: np.ndarray  # int64: 1-based line of each record
    reasons: np.ndarray  # object: a RejectReason value, "" for rows parsed without a problem
    details: np.ndarray  # object: what was wrong
    shown: list[str | None]  # what rejects/ shows of a rejected row (the line, the non-string text)
    meta: pa.Array | None  # keep_columns as JSON; None when the corpus keeps none

    @staticmethod
    def concat(parts: list[ParsedLines]) -> ParsedLines:
        """The parts' rows one after another (batches of several files joined)."""
        metas = [p.meta for p in parts]
        return ParsedLines(np.concatenate([p.lines for p in parts]), np.concatenate([p.reasons for p in parts]),
                           np.concatenate([p.details for p in parts]), [s for p in parts for s in p.shown],
                           None if metas[0] is None else pa.concat_arrays(metas))

    def take(self, positions: np.ndarray) -> ParsedLines:
        return ParsedLines(self.lines[positions], self.reasons[positions], self.details[positions],
                           [self.shown[i] for i in positions],
                           self.meta.take(pa.array(positions, pa.int64())) if self.meta is not None else None)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _not_object(value: Any) -> str:
    return f"a JSON {_kind(value)}, not an object (JSON Lines holds one object per line)"


def _malformed(line: bytes, exc: orjson.JSONDecodeError) -> tuple[str, str]:
    """(reason, detail) of a line that does not parse."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return RejectReason.INVALID_UTF8.value, f"not valid UTF-8 (byte {bad.start + 1} of the line)"
    return RejectReason.INVALID_JSON.value, f"not valid JSON: {exc.msg} at column {exc.colno}"


def _shown_line(line: bytes) -> str:
    return line[: 4 * _SHOWN_CHARS].decode("utf-8", errors="replace")[:_SHOWN_CHARS]


def _arrow_string(value: Any) -> str | None:
    """A JSON value as the Parquet path makes a string of its column: Arrow's cast, or JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return pa.array([value], pa.float64()).cast(pa.string())[0].as_py()
    return json.dumps(value, default=str)


def _strings(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_arrow_string(v) for v in values], pa.string())


_INTEGER = re.compile(r"-?[0-9]+")
# orjson reads an integer beyond 64 bits as a float (123456789012345678901234567890 -> 1.2345678901234568e+29):
# an id of that size would lose its digits and clash with its neighbours.
_BEYOND_64_BITS = float(2 ** 63)
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _lossy(record: dict, roles: Roles, line: bytes) -> bool:
    """Whether orjson may have read an integer of the values used as a float: a mapped value beyond
    64 bits, or (for kept keys, whose values may nest) a run of 19 digits anywhere in the line."""
    for key in roles.strings:
        value = record.get(key)
        if type(value) is float and abs(value) >= _BEYOND_64_BITS:
            return True
    return bool(roles.keep) and _LONG_DIGITS.search(line) is not None
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _integer(value: Any) -> int | None:
    """An integer as Arrow's cast to int64 reads it (2, 2.0, "2"); None when it is not one. A boolean
    is not: `true` for a generation is a mapping mistake, not generation 1."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        value = int(value) if _INTEGER.fullmatch(value) else None
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return value
    return None


@dataclass(frozen=True)
class Roles:
    """The keys a corpus reads, by what they are for."""

    text: str
    generation: str | None
    strings: tuple[str, ...]  # id, prompt and provenance keys (not the text or generation key)
    keep: tuple[tuple[str, str], ...]  # (meta key, input key) of each kept column
    text_key_path: str  # the config key that names the text key, for messages

    @classmethod
    def of(cls, roles: dict[str, str], text_key_path: str) -> Roles:
        text, generation = roles["text"], roles.get("generation")
        strings = {c for r, c in roles.items() if r not in ("text", "generation") and not r.startswith("keep:")}
        return cls(text=text, generation=generation, strings=tuple(sorted(strings - {text, generation})),
                   keep=tuple((r[len("keep:"):], c) for r, c in roles.items() if r.startswith("keep:")),
                   text_key_path=text_key_path)


def parse_records(records: list[tuple[int, bytes]], roles: Roles) -> tuple[pa.RecordBatch, ParsedLines]:
    """Records -> a batch of the roles' columns (as `build_documents` reads Parquet) and what was wrong.

    A row whose line is not a JSON object, or whose text is missing or not a string, gets its reason
    here; every row stays in the batch, so rows keep their place (`source_row`).
    """
    n = len(records)
    reasons = np.full(n, "", dtype=object)
    details = np.full(n, "", dtype=object)
    shown: list[str | None] = [None] * n
    texts: list[str | None] = [None] * n
    generations: list[Any] = [None] * n
    strings = {key: [None] * n for key in roles.strings}
    meta: list[str | None] | None = [None] * n if roles.keep else None
    text_key = roles.text
    for i, (_, line) in enumerate(records):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            reasons[i], details[i] = _malformed(line, exc)
            shown[i] = _shown_line(line)
            continue
        if type(record) is dict and _lossy(record, roles, line):
            record = json.loads(line)  # exact integers; orjson already accepted the line as JSON
        if type(record) is not dict:
            reasons[i], details[i], shown[i] = RejectReason.NOT_AN_OBJECT.value, _not_object(record), _shown_line(line)
            continue
        text = record.get(text_key, _MISSING)
        if type(text) is str:
            texts[i] = text
        elif text is _MISSING:
            reasons[i] = RejectReason.MISSING_COLUMN.value
            details[i] = (f"no key {text_key!r} ({roles.text_key_path}); the record has "
                          f"{', '.join(map(repr, record)) or 'no keys'}")
            shown[i] = _shown_line(line)
        elif text is not None:
            reasons[i] = RejectReason.TEXT_NOT_STRING.value
            details[i] = f"key {text_key!r} holds a JSON {_kind(text)}, not text"
            shown[i] = json.dumps(text, default=str, ensure_ascii=False)[:_SHOWN_CHARS]
        for key, values in strings.items():
            values[i] = record.get(key)
        if roles.generation is not None:
            generations[i] = record.get(roles.generation)
        if meta is not None:
            # As the Parquet path writes `meta` (sort_keys, default=str), from the values as written.
            meta[i] = json.dumps({k: record.get(c) for k, c in roles.keep}, sort_keys=True, default=str,
                                 ensure_ascii=False)
    columns = {text_key: pa.array(texts, pa.string())}
    if roles.generation is not None:
        ints = [_integer(v) for v in generations]
        for i, (raw, value) in enumerate(zip(generations, ints)):
            if raw is not None and value is None and not reasons[i]:
                reasons[i] = RejectReason.BAD_GENERATION.value
                details[i] = f"key {roles.generation!r} holds {json.dumps(raw, default=str)[:80]}, not an integer"
        columns[roles.generation] = pa.array(ints, pa.int64())
    for key, values in strings.items():
        columns[key] = _strings(values)
    batch = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
    lines = np.fromiter((number for number, _ in records), dtype=np.int64, count=n)
    parsed = ParsedLines(lines, reasons, details, shown, pa.array(meta, pa.string()) if meta is not None else None)
    return batch, parsed


def sample_texts(path: str, compression: str | None, key: str, rows: int) -> tuple[list[str], int, int]:
    """(texts, UTF-8 bytes of those texts, bytes of the lines read) of a file's first `rows` records;
    records whose text is not a string are left out of the texts but not out of the line bytes."""
    texts: list[str] = []
    text_bytes = line_bytes = 0
    whole = Chunk(0, None, 0, rows)
    for k, (_, line) in enumerate(iter_records(path, compression, whole)):
        if k == rows:
            break
        line_bytes += len(line) + 1
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        text = value.get(key) if isinstance(value, dict) else None
        if isinstance(text, str):
            texts.append(text)
            text_bytes += len(text.encode("utf-8"))
    return texts, text_bytes, line_bytes
