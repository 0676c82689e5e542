"""enumerate() over an on-demand iterator (a generator, a zip over a tensor and a list, an
itertools object) is an `enumerate` to type()/isinstance() and numbers from its start.

Before session 10 the trace modelled it as zip(count(start), it): results were right but
`type(enumerate(gen()))` answered `zip` -- a silent wrong result for code that checks the type.
"""
import itertools

import torch

from differential import check


def _gen(n):
    yield from range(n)


def type_of_enumerate_over_generator(x):
    e = enumerate(_gen(3), 5)
    return x + 1, type(e).__name__, isinstance(e, enumerate), isinstance(e, zip), list(e)


def type_of_enumerate_over_zip(x, lst):
    e = enumerate(zip(x, lst))
    out = x * 0
    for i, (a, b) in e:
        out = out + a * b * i
    return out, type(e) is enumerate, next(e, "done")


def enumerate_over_count(x):
    e = enumerate(itertools.count(10), start=-2)
    first = [next(e) for _ in range(3)]
    return x - 1, first, type(e).__name__


def test_enumerate_over_generator():
    check(type_of_enumerate_over_generator, torch.randn(3))


def test_enumerate_over_zip():
    check(type_of_enumerate_over_zip, torch.randn(3), [1.0, 2.0, 3.0])


def test_enumerate_over_count():
    check(enumerate_over_count, torch.randn(2))
