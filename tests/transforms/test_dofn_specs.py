"""Beam's DoFn state introspection, answered once per DoFn object: the same answers, fewer walks."""

import gc

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.userstate import BagStateSpec, CombiningValueStateSpec, TimerSpec, on_timer

import hybridmix.transforms  # noqa: F401 - installs the cache, as every hybridmix process does
from hybridmix.transforms import dofn_specs

ORIGINAL = userstate.get_dofn_specs.__wrapped__


class _Stateful(beam.DoFn):
    SEEN = BagStateSpec("seen", VarIntCoder())
    TOTAL = CombiningValueStateSpec("total", VarIntCoder(), sum)
    FLUSH = TimerSpec("flush", userstate.TimeDomain.WATERMARK)

    def process(self, element, seen=beam.DoFn.StateParam(SEEN), total=beam.DoFn.StateParam(TOTAL),
                flush=beam.DoFn.TimerParam(FLUSH)):
        seen.add(element[1])
        total.add(element[1])
        flush.set(0)

    @on_timer(FLUSH)
    def _flush(self, key=beam.DoFn.KeyParam, seen=beam.DoFn.StateParam(SEEN), total=beam.DoFn.StateParam(TOTAL)):
        yield key, sorted(seen.read()), total.read()


class _Counting(beam.DoFn):
    SEEN = BagStateSpec("seen", VarIntCoder())

    def process(self, element, seen=beam.DoFn.StateParam(SEEN)):
        seen.add(element[1])
        yield element[0], len(list(seen.read()))


class _Plain(beam.DoFn):
    def process(self, element):
        yield element


def test_installed_on_import():
    assert userstate.get_dofn_specs is not ORIGINAL
    dofn_specs.install()  # a second install does not wrap the cache again
    assert userstate.get_dofn_specs.__wrapped__ is ORIGINAL


def test_same_answers_as_beam_and_one_walk_per_dofn():
    calls = []

    def counting(dofn):
        calls.append(dofn)
        return ORIGINAL(dofn)

    get = dofn_specs.cached(counting)
    stateful, plain = _Stateful(), _Plain()
    for dofn in (stateful, plain, beam.Map(len).fn):
        expected = ORIGINAL(dofn)
        for _ in range(3):
            assert get(dofn) == expected
    assert {s.name for s in get(stateful)[0]} == {"seen", "total"}
    assert {t.name for t in get(stateful)[1]} == {"ts-flush"}
    assert get(plain) == (set(), set())
    assert len(calls) == 3  # one walk per DoFn object, not per question
    get(stateful)[0].clear()  # each caller gets its own sets
    assert len(get(stateful)[0]) == 2
    assert len(calls) == 3
    get(_Stateful())  # another object of the same class is walked on its own
    assert len(calls) == 4


def test_entries_go_with_their_dofn():
    get = dofn_specs.cached(ORIGINAL)
    dofns = [_Plain() for _ in range(5)]
    for dofn in dofns:
        get(dofn)
    assert get.cache_size() == 5
    del dofns, dofn
    gc.collect()
    assert get.cache_size() == 0


def test_a_stateful_dofn_still_keeps_state():
    assert userstate.is_stateful_dofn(_Counting())
    with TestPipeline() as p:
        out = p | beam.Create([("a", 1), ("a", 2), ("b", 5)]) | beam.ParDo(_Counting())
        assert_that(out, equal_to([("a", 1), ("a", 2), ("b", 1)]))
