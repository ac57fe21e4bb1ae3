"""Beam's state-and-timer introspection of a DoFn, computed once per DoFn instead of once per question.

Beam asks whether a DoFn keeps user state (`apache_beam.transforms.userstate.get_dofn_specs`) when
a ParDo is built, when the pipeline is translated, and again in every worker that runs it; each
answer walks every method of the DoFn and inspects its signature. For this pipeline that is some
1,400 calls and about 0.9 s of every run (0.9 s of the demo's 7 s), on the same few hundred DoFn
objects. The answer depends only on the DoFn's methods and their default arguments, which nothing
changes after the DoFn is made, so it is kept per DoFn object (by identity, dropped with the object).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from apache_beam.transforms import userstate

Specs = tuple[set, set]


def cached(original: Callable[[Any], Specs]) -> Callable[[Any], Specs]:
    """`original` (get_dofn_specs) answered once per DoFn object; each caller gets its own sets."""
    lock = threading.Lock()
    # id -> (weak reference, specs): by identity, as DoFns may define equality; an entry goes with its DoFn.
    found: dict[int, tuple[weakref.ref, Specs]] = {}

    def forget(key: int) -> Callable[[weakref.ref], None]:
        def drop(ref: weakref.ref) -> None:
            with lock:
                if key in found and found[key][0] is ref:
                    del found[key]
        return drop

    def get_dofn_specs(dofn: Any) -> Specs:
        key = id(dofn)
        with lock:
            entry = found.get(key)
        if entry is None or entry[0]() is not dofn:
            specs = original(dofn)
            try:
                ref = weakref.ref(dofn, forget(key))
            except TypeError:  # not weakly referenceable: nothing to key it by safely
                return specs
            entry = (ref, (frozenset(specs[0]), frozenset(specs[1])))
            with lock:
                found[key] = entry
        states, timers = entry[1]
        return set(states), set(timers)

    get_dofn_specs.__wrapped__ = original  # type: ignore[attr-defined]
    get_dofn_specs.cache_size = lambda: len(found)  # type: ignore[attr-defined]
    return get_dofn_specs


def install() -> None:
    """Answer Beam's callers from the cache (they look the function up on the module at each call)."""
    if not hasattr(userstate.get_dofn_specs, "__wrapped__"):
        userstate.get_dofn_specs = cached(userstate.get_dofn_specs)
