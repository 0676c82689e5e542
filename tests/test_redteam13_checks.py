"""Red-team probes of in-graph checks (policy/checks.py) and the builtins they read: a function
made with its own `__builtins__` dict (exec) reads its builtin names from that dict, which
bytegraph does not guard; a name replaced there later must not hit a stale entry (the check's
exception class, or any builtin).

PYTEST_DONT_REWRITE: the programs' own `assert` statements must stay Python's."""
import builtins

import torch

import bytegraph
from differential import reset
from test_breaks13_checks import _outcome

SOURCE = '''
def check(x):
    if x.sum() < 0:
        raise ValueError("negative")
    return x + 1

def length(x):
    return x * len(x)
'''


class MyError(Exception):
    pass


def _same(fn, compiled, *args):
    want, got = _outcome(fn, *args), _outcome(compiled, *args)
    assert want[0] == got[0], (want, got)
    if want[0] == "ok":
        assert torch.equal(want[1], got[1])
    else:
        assert want[1] == got[1]


def test_own_builtins_dict_replaced_after_the_compile():
    ns = {"torch": torch, "__builtins__": dict(vars(builtins))}
    exec(SOURCE, ns)
    reset()
    check, length = bytegraph.compile(ns["check"], backend="eager"), bytegraph.compile(ns["length"], backend="eager")
    x, neg = torch.ones(3), -torch.ones(3)
    for args in ((ns["check"], check, x), (ns["check"], check, neg), (ns["length"], length, x)):
        _same(*args)
    ns["__builtins__"]["ValueError"] = MyError
    ns["__builtins__"]["len"] = lambda s: 7
    for args in ((ns["check"], check, x), (ns["check"], check, neg), (ns["length"], length, x)):
        _same(*args)
