"""Argument types of the ``grasp-autolabel`` command: numbers checked where they are read."""
import argparse
import math

__all__ = ['positive_int', 'non_negative_int', 'non_negative_float', 'positive_float',
           'fraction']


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {text}')
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'expected an integer >= 0, got {text}')
    return value


def _finite(text: str, ok, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f'expected {what}, got {text}')
    return value


def non_negative_float(text: str) -> float:
    return _finite(text, lambda v: v >= 0, 'a number >= 0')


def positive_float(text: str) -> float:
    return _finite(text, lambda v: v > 0, 'a positive number')


def fraction(text: str) -> float:
    return _finite(text, lambda v: 0 <= v <= 1, 'a number from 0 to 1')
