"""Evaluation-set contamination: word n-gram indexes of evaluation items and lookups of documents.

Units are those of the compiled text pass (`kernels.analyze`): words, normalized (case and
accents folded, compatibility forms unified) and split at spaces and punctuation, so changes of
casing, whitespace and punctuation leave every n-gram as it was; single characters in scripts
written without spaces. There `ngram` and `min_item_words` count words as the repetition rules do
(`filters.TextView.chars_per_word`): an item mostly in Chinese is indexed by its 26-character n-grams
(13 words of about 2 characters), one in Japanese, Korean or Thai by 39-character ones. 13 Chinese
characters are a stock phrase (坚持和发展中国特色社会主义, 今後ともどうぞよろしくお願いいたします in
Japanese) that clean text shares with an item quoting it. A document is looked up with every length
the index holds, so an item is found in a document of any script.

Boilerplate. An n-gram found in more than `max_items_per_ngram` items (items of the same text
count once) is text the items share ("Below is an instruction that describes a task ...",
"Answer with one of the options"): it says nothing about which item leaked, and clean text in
the same format holds it too. Its words are boilerplate of every item it occurs in and are cut
out, with the words at the edges of what remains that the boilerplate also holds. What remains
(the item's own text, in runs between boilerplate) is indexed: a run of at least `ngram` words
by all its word `ngram`-grams, a shorter run of at least `min_item_words` words whole, shorter
runs not at all. An item with nothing left to index is counted (too short, or boilerplate only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hybridmix.transforms import kernels
from hybridmix.transforms.batches import list_array
from hybridmix.transforms.text import analyze, scripts, string_buffers


def tagged(keys: np.ndarray, length: int) -> np.ndarray:
    """Keys of n-grams of different lengths must not collide: the length is mixed into each key."""
    return kernels.tag_keys(keys, length)


@dataclass
class PartialIndex:
    """Some evaluation items as word hashes, before the items of all files meet (a Beam accumulator)."""

    sets: list[str] = field(default_factory=list)  # per item: its evaluation set
    ids: list[str] = field(default_factory=list)  # per item: its id
    words: list[np.ndarray] = field(default_factory=list)  # per item: its word hashes
    total: dict[str, int] = field(default_factory=dict)  # per set: items read
    scales: list[int] = field(default_factory=list)  # per item: units per word (1, or 2-3 in text without spaces)

    def merge(self, other: PartialIndex) -> PartialIndex:
        self.sets += other.sets
        self.ids += other.ids
        self.words += other.words
        self.scales += other.scales
        for name, count in other.total.items():
            self.total[name] = self.total.get(name, 0) + count
        return self


def item_words(name: str, ids: list[str], texts: pa.Array) -> PartialIndex:
    """One evaluation file's items as word hashes (the costly part, done where the file is read)."""
    from hybridmix.transforms.filters import TextView  # filters import this module

    analysis = analyze(texts)
    offsets = analysis.word_offsets
    view = TextView(texts, scripts=scripts(analysis), word_hashes=list_array(analysis.word_hashes, offsets))
    return PartialIndex(sets=[name] * len(ids), ids=list(ids), total={name: len(ids)},
                        words=[analysis.word_hashes[offsets[i]:offsets[i + 1]].copy() for i in range(len(ids))],
                        scales=view.chars_per_word.astype(int).tolist())


def _ngram_keys(words: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tagged keys, owner, position) of every word n-gram of every sequence in `words`."""
    lengths = np.asarray([len(w) for w in words], np.int64)
    if not len(words):
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    hashes = np.concatenate(words).astype(np.uint32) if lengths.sum() else np.zeros(0, np.uint32)
    grams = np.maximum(lengths - n + 1, 0)
    keys = tagged(kernels.ngram_hashes(hashes, offsets, n), n)
    owner = np.repeat(np.arange(len(words)), grams)
    position = np.arange(len(keys)) - np.repeat(np.cumsum(grams) - grams, grams)
    return keys, owner, position


def _distinct_pairs(keys: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Positions of the distinct (key, owner) pairs, in key order."""
    order = np.lexsort((owner, keys))
    k, o = keys[order], owner[order]
    first = np.ones(len(order), bool)
    first[1:] = (k[1:] != k[:-1]) | (o[1:] != o[:-1])
    return order[first]


def _items_per_key(keys: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys and how many distinct items hold each."""
    if not len(keys):
        return keys, np.zeros(0, np.int64)
    return np.unique(keys[_distinct_pairs(keys, owner)], return_counts=True)


@dataclass
class EvalIndex:
    """Every indexed item's n-gram keys: distinct keys, and for each the items it belongs to."""

    keys: np.ndarray  # uint64, distinct, sorted
    ptr: np.ndarray  # int64, len(keys) + 1: key k's entries are ptr[k]..ptr[k + 1]
    items: np.ndarray  # int32, per entry: its item
    entry_len: np.ndarray  # int32, per entry: 0 for an n-gram; L for a short run keyed by its first words
    entry_full: np.ndarray  # uint64, per entry: the key of the whole short run (0 for n-grams)
    key_len: np.ndarray  # int32, per key: the units it was made of (n-gram or short-run prefix length)
    item_sets: np.ndarray  # int32, evaluation set of each item (index into `sets`)
    item_ids: tuple[str, ...]
    item_grams: np.ndarray  # int32, distinct indexed n-grams per item
    sets: tuple[str, ...]
    ngram: int  # n-gram length in words (decontaminate.ngram; units: times an item's scale)
    prefix: int  # short runs are keyed by this many first words (min_item_words; the same)
    report: dict  # per set: items, indexed, too short, with common n-grams; common n-grams ignored
    _table: list | None = None

    @property
    def empty(self) -> bool:
        return len(self.keys) == 0

    def tables(self) -> list[tuple]:
        """(length, slots, where, bits) per lookup length: n-grams, and the first words of short
        runs, of each scale. Built where they are used (a table is several times the size of its
        keys), one per length, so that the few keys of short runs sit in a table small enough to
        stay in cache."""
        if self._table is None:
            self._table = [(int(length), *kernels.probe_table(self.keys[mask], np.flatnonzero(mask)))
                           for length in np.unique(self.key_len) for mask in [self.key_len == length]]
        return self._table

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_table": None}


def build_index(part: PartialIndex, sets: list[str], ngram: int, min_item_words: int,
                max_items_per_ngram: int, max_keys: int) -> EvalIndex:
    """The index of every item of every file: boilerplate cut out, one entry per (key, item), sorted.

    `ngram` and `min_item_words` are words: an item of a script written without spaces is indexed by
    n-grams of `ngram` times its units per word (`PartialIndex.scales`)."""
    # Items are (set, id, text), numbered in that order whatever order the files were merged in: an
    # item listed twice is one item, and items that share an id but not a text are two. Keyed by id
    # alone, the second text of an id was never indexed, and its copies stayed in the mix (ids 0..n in
    # both a test and a validation file, or the default <file name>:<row> of two test.jsonl).
    names = {name: i for i, name in enumerate(sets)}
    scales = part.scales if len(part.scales) == len(part.words) else [1] * len(part.words)
    chosen: dict[tuple[str, str, bytes], tuple[np.ndarray, int]] = {}
    for name, item_id, words, scale in sorted(zip(part.sets, part.ids, part.words, scales),
                                              key=lambda t: (names[t[0]], t[1], t[2].tobytes())):
        chosen.setdefault((name, item_id, words.tobytes()), (words, int(scale)))
    ordered = list(chosen)
    words = [chosen[item][0] for item in ordered]
    item_scale = np.asarray([chosen[item][1] for item in ordered], np.int64)
    item_sets = np.asarray([names[name] for name, _, _ in ordered], np.int32)
    # Items of the same text count once: an evaluation set that repeats a question is not boilerplate.
    text_of: dict[bytes, int] = {}
    same_text = np.asarray([text_of.setdefault(w.tobytes(), i) for i, w in enumerate(words)], np.int64)
    sizes = np.asarray([len(w) for w in words], np.int64)

    parts = []
    touched = np.zeros(len(words), bool)
    ignored = 0
    for scale in np.unique(item_scale) if len(words) else []:
        members = np.flatnonzero(item_scale == scale)
        found = _group_entries([words[i] for i in members], same_text[members], int(ngram * scale),
                               int(min_item_words * scale), max_items_per_ngram)
        keys, local_items, entry_len, entry_full, lookup_len, local_touched, common = found
        parts.append((keys, members[local_items], entry_len, entry_full, lookup_len))
        touched[members[local_touched]] = True
        ignored += common
    if parts:
        keys, items, entry_len, entry_full, lookup_len = (np.concatenate(a) for a in zip(*parts))
    else:
        keys, entry_full = np.zeros(0, np.uint64), np.zeros(0, np.uint64)
        items, entry_len, lookup_len = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32)
    # One entry per (key, item, whole run), sorted by key.
    ident = entry_full ^ kernels.mix64(items.astype(np.uint64))
    order = np.lexsort((ident, keys))
    keys, items, entry_len, entry_full, lookup_len, ident = (
        a[order] for a in (keys, items, entry_len, entry_full, lookup_len, ident))
    first = np.ones(len(keys), bool)
    first[1:] = (keys[1:] != keys[:-1]) | (ident[1:] != ident[:-1])
    keys, items, entry_len, entry_full, lookup_len = (
        keys[first], items[first], entry_len[first], entry_full[first], lookup_len[first])
    if len(keys) > max_keys:
        raise ValueError(f"the evaluation sets hold {len(keys):,} distinct n-grams, more than "
                         f"decontaminate.max_index_ngrams ({max_keys:,}) allows in memory")
    item_grams = np.bincount(items, minlength=len(ordered)).astype(np.int32)
    report = {}
    short_of = sizes < min_item_words * item_scale
    for name in sets:
        in_set = item_sets == names[name]
        unindexed = in_set & (item_grams == 0)
        report[name] = {
            "items": part.total.get(name, 0),
            "distinct_items": int(in_set.sum()),
            "indexed": int(np.sum(in_set & (item_grams > 0))),
            "too_short": int(np.sum(unindexed & short_of)),
            "boilerplate_only": int(np.sum(unindexed & ~short_of)),
            "items_with_boilerplate": int(np.sum(in_set & touched)),
            "ngrams": int(item_grams[in_set].sum()),
        }
    unique_keys, key_starts = np.unique(keys, return_index=True)  # entries are sorted by key
    return EvalIndex(
        keys=unique_keys, ptr=np.append(key_starts, len(keys)).astype(np.int64), items=items.astype(np.int32),
        entry_len=entry_len, entry_full=entry_full, key_len=lookup_len[key_starts].astype(np.int32),
        item_sets=item_sets, item_ids=tuple(item_id for _, item_id, _ in ordered), item_grams=item_grams,
        sets=tuple(sets), ngram=ngram, prefix=min_item_words,
        report={"sets": report, "common_ngrams_ignored": int(ignored)})


def _group_entries(words: list[np.ndarray], same_text: np.ndarray, ngram: int, min_item_words: int,
                   max_items_per_ngram: int) -> tuple:
    """Index entries of items of one scale, n-grams of `ngram` units and short runs of at least
    `min_item_words`: (keys, item, entry_len, entry_full, lookup length per entry, items that held
    boilerplate, boilerplate n-grams and whole runs ignored), items numbered within `words`."""
    # Boilerplate: the words of n-grams that more than max_items_per_ngram items hold.
    keys, owner, position = _ngram_keys(words, ngram)
    distinct, holders = _items_per_key(keys, same_text[owner] if len(owner) else owner)
    common = distinct[holders > max_items_per_ngram]
    sizes = np.asarray([len(w) for w in words], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    cover = np.zeros(int(starts[-1]) + 1, np.int64)
    hit = np.isin(keys, common)
    np.add.at(cover, starts[owner[hit]] + position[hit], 1)
    np.add.at(cover, starts[owner[hit]] + position[hit] + ngram, -1)
    boilerplate_all = np.cumsum(cover)[:-1] > 0
    touched = np.zeros(len(words), bool)
    touched[owner[hit]] = True

    # What is left of each item, in runs between boilerplate.
    runs: list[np.ndarray] = []
    run_owner: list[int] = []
    for item, w in enumerate(words):
        if not touched[item]:
            runs.append(w)
            run_owner.append(item)
            continue
        cut = boilerplate_all[starts[item]:starts[item + 1]]
        # A fragment of the format shorter than an n-gram ("### Response:" after the item) stays
        # next to the item's text: words at a run's edges that the item's boilerplate also holds
        # are cut as well.
        vocabulary = set(w[cut].tolist())
        steps = np.diff(np.concatenate([[0], (~cut).astype(np.int8), [0]]))
        for start, end in zip(np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)):
            while start < end and int(w[start]) in vocabulary:
                start += 1
            while end > start and int(w[end - 1]) in vocabulary:
                end -= 1
            if end > start:
                runs.append(w[start:end])
                run_owner.append(item)
    run_owner_arr = np.asarray(run_owner, np.int64)
    run_lengths = np.asarray([len(r) for r in runs], np.int64)
    # Runs of ngram words or more: every n-gram is an entry.
    long_runs = np.flatnonzero(run_lengths >= ngram)
    keys, o, _ = _ngram_keys([runs[r] for r in long_runs], ngram)
    items = run_owner_arr[long_runs][o] if len(long_runs) else np.zeros(0, np.int64)
    entry_len = np.zeros(len(keys), np.int32)
    entry_full = np.zeros(len(keys), np.uint64)
    lookup_len = np.full(len(keys), ngram, np.int32)
    # Shorter runs are matched whole: keyed by their first min_item_words words (one lookup
    # length for all of them), with the key of the whole run to check.
    short = np.flatnonzero((run_lengths >= min_item_words) & (run_lengths < ngram))
    shared = np.zeros(0, np.uint64)
    if len(short):
        full = np.zeros(len(short), np.uint64)
        for length in np.unique(run_lengths[short]):
            chosen = np.flatnonzero(run_lengths[short] == length)
            full[chosen], _, _ = _ngram_keys([runs[short[c]] for c in chosen], int(length))
        prefix, _, _ = _ngram_keys([runs[r][:min_item_words] for r in short], min_item_words)
        # Whole runs that many items repeat (the same short question everywhere) are boilerplate too.
        distinct, holders = _items_per_key(full, same_text[run_owner_arr[short]])
        shared = distinct[holders > max_items_per_ngram]
        keep = ~np.isin(full, shared)
        keys = np.concatenate([keys, prefix[keep]])
        items = np.concatenate([items, run_owner_arr[short][keep]])
        entry_len = np.concatenate([entry_len, run_lengths[short][keep].astype(np.int32)])
        entry_full = np.concatenate([entry_full, full[keep]])
        lookup_len = np.concatenate([lookup_len, np.full(int(keep.sum()), min_item_words, np.int32)])
    return keys, items, entry_len, entry_full, lookup_len, np.flatnonzero(touched), len(common) + len(shared)


@dataclass(frozen=True)
class Matches:
    """Per document of a batch: the best-matching item, if any."""

    item: np.ndarray  # int32, -1 where nothing matched
    count: np.ndarray  # int32, distinct n-grams of that item found in the document
    share: np.ndarray  # float64, count / the item's indexed n-grams
    word_start: np.ndarray  # int64, first word of the first matching n-gram (within the document)
    word_len: np.ndarray  # int64, its length in words
    whole: np.ndarray  # bool, that match is a whole short item (not one n-gram of a longer one)


def find_matches(index: EvalIndex, word_hashes: np.ndarray, word_offsets: np.ndarray) -> Matches:
    n = len(word_offsets) - 1
    item = np.full(n, -1, np.int32)
    count = np.zeros(n, np.int32)
    share = np.zeros(n, np.float64)
    word_start = np.zeros(n, np.int64)
    word_len = np.zeros(n, np.int64)
    whole = np.zeros(n, bool)
    if index.empty or n == 0:
        return Matches(item, count, share, word_start, word_len, whole)
    found = [kernels.probe_ngrams(word_hashes, word_offsets, np.asarray([length], np.int64), slots, where, bits,
                                  index.ptr, index.entry_len, index.entry_full)
             for length, slots, where, bits in index.tables()]
    docs, entries, pos, lens = (np.concatenate(parts) for parts in zip(*found))
    if not len(docs):
        return Matches(item, count, share, word_start, word_len, whole)
    items = index.items[entries].astype(np.int64)
    keys = entries.astype(np.uint64)  # an entry is one n-gram (or whole short run) of one item
    # Distinct n-grams per (document, item); the first position of each pair is its span.
    order = np.lexsort((pos, keys, items, docs))
    docs, items, keys, pos, lens, entries = (a[order] for a in (docs, items, keys, pos, lens, entries))
    new_key = np.ones(len(docs), bool)
    new_key[1:] = (docs[1:] != docs[:-1]) | (items[1:] != items[:-1]) | (keys[1:] != keys[:-1])
    docs, items, pos, lens, entries = (a[new_key] for a in (docs, items, pos, lens, entries))
    pair_start = np.ones(len(docs), bool)
    pair_start[1:] = (docs[1:] != docs[:-1]) | (items[1:] != items[:-1])
    starts = np.flatnonzero(pair_start)
    pair_docs, pair_items = docs[starts], items[starts]
    pair_counts = np.diff(np.append(starts, len(docs)))
    pair_id = np.cumsum(pair_start) - 1
    first_at = np.lexsort((pos, pair_id))[starts]  # each pair's earliest matching n-gram
    pair_first = pos[first_at]
    pair_share = pair_counts / np.maximum(index.item_grams[pair_items], 1)
    # The best item per document: the largest share, then the most n-grams, then the lowest item.
    best = np.lexsort((pair_items, -pair_counts, -pair_share, pair_docs))
    take = np.ones(len(best), bool)
    take[1:] = pair_docs[best][1:] != pair_docs[best][:-1]
    chosen = best[take]
    d = pair_docs[chosen]
    item[d] = pair_items[chosen]
    count[d] = pair_counts[chosen]
    share[d] = pair_share[chosen]
    word_start[d] = pair_first[chosen]
    word_len[d] = lens[first_at[chosen]]
    whole[d] = index.entry_len[entries[first_at[chosen]]] > 0
    return Matches(item, count, share, word_start, word_len, whole)


def matched_span(text: str, word_start: int, word_len: int, limit: int = 300) -> str:
    """The original characters of words [word_start, word_start + word_len) of `text`."""
    arr = pa.array([text], pa.string())
    data, offsets = string_buffers(arr)
    starts, ends = kernels.word_spans(data, offsets, kernels.char_classes(), *kernels.fold_table()[:3])
    if word_start >= len(starts):
        return ""
    last = min(word_start + word_len, len(starts)) - 1
    raw = bytes(data[starts[word_start]:ends[last]]).decode("utf-8", "replace")
    return raw if len(raw) <= limit else raw[:limit - 1] + "…"
