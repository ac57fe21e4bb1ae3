"""Argument types the commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of `low` or more, else a usage error that says so."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = low - 1
        if n < low:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of {low} or more")
        return n

    return parse
