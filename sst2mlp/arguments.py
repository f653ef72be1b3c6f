"""Parsers of command-line values (the suite's --sst2-* options and the report's): each accepts one kind of value
and raises argparse.ArgumentTypeError naming what it expected and what it got. Free of torch: the report uses them."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number_in(expected: str, accepts: Callable[[float], bool]) -> Callable[[str], float]:
    """A parser of numbers that `accepts`; `expected` describes them for the error."""
    return lambda text: number_where(accepts, expected, text)


def positive_int(text: str) -> int:
    text = str(text).strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer such as 4, got {text!r}")
    return int(text)


def non_negative_int(text: str) -> int:
    text = str(text).strip()
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer such as 0, got {text!r}")
    return int(text)


def number_where(accepts: Callable[[float], bool], expected: str, text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        value = math.nan  # fails every range check below
    if not accepts(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    return number_where(lambda v: 0 < v < math.inf, "a positive number of seconds such as 1.0", text)


def non_negative_float(text: str) -> float:
    return number_where(lambda v: 0 <= v < math.inf, "a number of seconds, 0 or more, such as 20", text)


def fraction(text: str) -> float:
    return number_where(lambda v: 0 < v <= 1, "a fraction above 0 and at most 1, such as 0.8", text)


def share(text: str) -> float:
    return number_where(lambda v: 0 <= v <= 1, "a share from 0 to 1, such as 0.1", text)


def choice(values: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if str(text).strip() not in values:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(values)}, got {text!r}")
        return str(text).strip()

    return parse
