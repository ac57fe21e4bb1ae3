"""The compiled kernels on several threads give the arrays one call gives."""

import logging
import os
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from hybridmix.pipelines.run import kernel_threads
from hybridmix.transforms import kernels, minhash, parallel
from hybridmix.transforms.filters import TextView
from hybridmix.transforms.scorer import load_scorer
from hybridmix.transforms.text import analyze, text_hashes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def texts() -> pa.Array:
    """Answers in English, Chinese and other scripts and an empty text: several runs' worth."""
    data = os.path.join(ROOT, "examples", "data")
    parts = [pq.read_table(os.path.join(data, name)).column("text").combine_chunks()
             for name in ("synthetic_alpaca_eval.parquet", "synthetic_zh.parquet", "human_zh.parquet")]
    return pa.concat_arrays([parts[0][:600], pa.array([""], pa.string()), parts[1], parts[2]])


@pytest.fixture
def threads():
    before = parallel.threads()
    yield parallel.set_threads
    parallel.set_threads(before)


def _everything(texts: pa.Array) -> dict[str, np.ndarray]:
    a = analyze(texts)
    view = TextView(texts)
    return {
        "normalized": np.frombuffer(a.normalized.buffers()[2], np.uint8),
        "normalized_offsets": np.frombuffer(a.normalized.buffers()[1], np.int32),
        "word_hashes": a.word_hashes, "word_offsets": a.word_offsets, "word_tokens": a.word_tokens,
        "space_tokens": a.space_tokens, "script": a.script, "estimated_tokens": a.estimated_tokens,
        "doc_stats": np.stack([view.stat(name) for name in kernels.STAT_COLUMNS], axis=1),
        "repeated_5grams": view.repeated_coverage(5),
        "repeated_per_word": view.repeated_coverage(3, per_word=True),
        "minhash": minhash.signatures(a.word_hashes, a.word_offsets, 5, 256, 1),
        "text_hashes": text_hashes(texts),
        "scores": load_scorer(None).log_odds(view),
    }


def test_runs_cover_every_text_once_in_order_and_split_the_bytes_evenly():
    sizes = np.random.default_rng(0).integers(0, 5000, 1000)
    offsets = np.concatenate([[7], 7 + np.cumsum(sizes)])
    for parts in (2, 3, 8):
        spans = parallel.runs(offsets, parts)
        assert len(spans) == parts
        assert spans[0][0] == 0 and spans[-1][1] == 1000
        assert all(hi == lo for (_, hi), (lo, _) in zip(spans, spans[1:]))
        shares = [(offsets[hi] - offsets[lo]) / (offsets[-1] - offsets[0]) for lo, hi in spans]
        assert max(shares) - min(shares) < 0.02
    # A small batch, or one text, runs whole.
    assert parallel.runs(np.array([0, 10, 20]), 4) == [(0, 2)]
    assert parallel.runs(np.array([0, 1 << 20]), 4) == [(0, 1)]
    assert parallel.runs(np.array([0]), 4) == [(0, 0)]


def test_any_number_of_threads_gives_the_same_arrays(texts, threads):
    threads(1)
    one = _everything(texts)
    assert len(parallel.runs(np.frombuffer(texts.buffers()[1], np.int32).astype(np.int64), 3)) == 3
    for n in (2, 3, 5):
        threads(n)
        many = _everything(texts)
        for name, expected in one.items():
            assert np.array_equal(many[name], expected), (n, name)


def test_kernel_threads_only_where_the_in_process_runner_runs_here():
    assert kernel_threads(PipelineOptions(["--runner=FnApiRunner"]), None) == parallel.available_cores()
    assert kernel_threads(PipelineOptions(["--runner=FnApiRunner"]), 3) == 3
    processes = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert kernel_threads(PipelineOptions(processes), 3) == 1
    assert kernel_threads(PipelineOptions(["--runner=FlinkRunner", "--environment_type=PROCESS"]), 3) == 1


def test_threads_must_be_at_least_one():
    with pytest.raises(ValueError, match="at least 1"):
        parallel.set_threads(0)


def _made_on(log: list, n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise OSError(f"cannot read item {i}")
        log.append(threading.current_thread().name)
        yield i


def test_items_made_ahead_come_in_order_from_a_helper_thread(threads):
    threads(2)
    made: list[str] = []
    assert list(parallel.ahead(_made_on(made, 50))) == list(range(50))
    assert set(made) == {"hybridmix-ahead"}


def test_with_one_thread_items_are_made_by_the_caller(threads):
    threads(1)
    made: list[str] = []
    assert list(parallel.ahead(_made_on(made, 5))) == list(range(5))
    assert set(made) == {threading.current_thread().name}


def test_an_error_making_an_item_is_raised_in_its_place(threads):
    threads(2)
    got = []
    with pytest.raises(OSError, match="cannot read item 3"):
        for item in parallel.ahead(_made_on([], 10, fail_at=3)):
            got.append(item)
    assert got == [0, 1, 2]


def test_leaving_early_stops_the_helper(threads):
    threads(2)
    made: list[str] = []
    items = parallel.ahead(_made_on(made, 1000))
    assert next(items) == 0
    items.close()
    assert len(made) <= 3  # the item handed over, one waiting, one being made
    assert not [t for t in threading.enumerate() if t.name == "hybridmix-ahead"]


# AheadDoFn, in a real pipeline on Beam's in-process runner (its DoFns run in this process).
_events: list[tuple[str, str, int]] = []  # (what, thread, value): what the steps did, in order
_events_lock = threading.Lock()


def _event(what: str, value: int) -> None:
    with _events_lock:
        _events.append((what, threading.current_thread().name, value))


class _Tens(parallel.AheadDoFn):
    """n -> 10n .. 10n+9, a tagged square per element, and a count; fails at `fail_at`."""

    def __init__(self, fail_at: int = -1) -> None:
        self._fail_at = fail_at

    def setup(self) -> None:
        from apache_beam.metrics import Metrics
        self._made = Metrics.counter("test_parallel", "made")

    def work(self, n: int, offset: int = 0):
        if n == self._fail_at:
            raise OSError(f"cannot make element {n}")
        for k in range(10):
            _event("made", 10 * n + k)
            yield 10 * n + k + offset
        yield parallel.Count(self._made, 10)
        import apache_beam as beam
        yield beam.pvalue.TaggedOutput("squares", n * n)

    def finish_work(self) -> None:
        _event("finished", 0)


def _taken(value: int) -> int:
    _event("taken", value)
    return value


def _run_tens(fail_at: int = -1):
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    _events.clear()
    p = beam.Pipeline()
    offset = p | "Offset" >> beam.Create([1000])
    out = (p | beam.Create(list(range(20))) | beam.ParDo(_Tens(fail_at), offset=beam.pvalue.AsSingleton(offset))
           .with_outputs("squares", main="main"))
    main = out.main | "Take" >> beam.Map(_taken)
    squares = out.squares | "Square" >> beam.Map(lambda v: _event("square", v))
    del main, squares
    result = p.run()
    result.wait_until_finish()
    made = result.metrics().query(MetricsFilter().with_name("made"))["counters"]
    return sum(c.committed or c.attempted for c in made)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_ahead_dofn_gives_the_outputs_in_order_and_counts_them(threads, n_threads):
    threads(n_threads)
    assert _run_tens() == 200  # counted where Beam keeps metrics, whatever thread did the work
    taken = [v for what, _, v in _events if what == "taken"]
    assert taken == [1000 + v for v in range(200)]  # with the side input, in the elements' order
    assert sorted(v for what, _, v in _events if what == "square") == [n * n for n in range(20)]
    workers = {thread for what, thread, _ in _events if what in ("made", "finished")}
    takers = {thread for what, thread, _ in _events if what == "taken"}
    # The work and finish_work on one helper thread (files written behind are per thread), the
    # steps after it on the runner's; with one kernel thread everything on the runner's.
    assert len(workers) == 1 and len(takers) == 1
    assert (workers == {"hybridmix-ahead-fn"}) == (n_threads == 2)
    assert (workers == takers) == (n_threads == 1)
    assert [what for what, _, _ in _events if what != "square"][-1] == "finished"


def test_ahead_dofn_makes_at_most_one_output_ahead(threads):
    threads(2)
    _run_tens()
    made = taken = most = 0
    for what, _, _ in _events:
        made += what == "made"
        taken += what == "taken"
        most = max(most, made - taken)
    # One handed over and waiting, one being made when the next is taken: memory stays bounded.
    assert taken == 200 and most <= 3


def test_ahead_dofn_raises_an_error_of_its_work_and_leaves_no_helper(threads):
    threads(2)
    with pytest.raises(Exception, match="cannot make element 7"):
        _run_tens(fail_at=7)
    for _ in range(100):
        if not [t for t in threading.enumerate() if t.name == "hybridmix-ahead-fn"]:
            break
        threading.Event().wait(0.05)
    assert not [t for t in threading.enumerate() if t.name == "hybridmix-ahead-fn"]


class _SlowFiles(parallel.AheadDoFn):
    """Writes a file per output, slowly: a helper still at work when its run is interrupted."""

    def __init__(self, folder) -> None:
        self._folder = folder

    def work(self, n: int):
        for k in range(100):
            threading.Event().wait(0.02)
            (self._folder / f"{n}-{k}").write_text("spilled")
            yield k


def test_stop_helpers_returns_once_no_helper_can_write(threads, tmp_path):
    """An interrupted run removes its staging folder after `stop_helpers`: nothing lands there later."""
    threads(2)
    fn = _SlowFiles(tmp_path)
    fn.setup()
    fn.start_bundle()
    assert list(fn.process(0)) == []  # handed to the helper, which starts on it
    taken = fn.process(1)
    assert next(taken) == 0  # the runner's thread is busy with element 0's outputs
    parallel.stop_helpers()
    written = len(os.listdir(tmp_path))
    threading.Event().wait(0.3)
    assert len(os.listdir(tmp_path)) == written
    assert not [t for t in threading.enumerate() if t.name == "hybridmix-ahead-fn"]


class _Stuck(parallel.AheadDoFn):
    """A helper whose work never returns (a lock that is never released): the interrupted run ends all the same."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def work(self, n: int):
        self.release.wait()
        yield n


def test_a_stuck_helper_does_not_keep_an_interrupted_run_from_ending(threads, monkeypatch, caplog):
    threads(2)
    monkeypatch.setattr(parallel, "STOP_WAIT_SECONDS", 1)
    fn = _Stuck()
    fn.setup()
    fn.start_bundle()
    assert list(fn.process(0)) == []
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="hybridmix.transforms.parallel"):
        stopping = threading.Thread(target=parallel.stop_helpers, daemon=True)  # so a wait with no end fails, not hangs
        stopping.start()
        stopping.join(10)
    assert not stopping.is_alive() and time.monotonic() - started >= 1
    assert "a helper thread did not stop within 1 s; left behind, at:" in caplog.text
    assert "in work" in caplog.text and "self.release.wait()" in caplog.text  # where it was stuck
    fn.release.set()  # it leaves at its next output
    for _ in range(100):
        if not [t for t in threading.enumerate() if t.name == "hybridmix-ahead-fn"]:
            break
        threading.Event().wait(0.05)
    assert not [t for t in threading.enumerate() if t.name == "hybridmix-ahead-fn"]
