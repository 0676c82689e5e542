"""redteam5: guards must not run user code. A dict guard compared its keys with `==` (a key
class's Python __eq__ ran on every call with a fresh but equal key: a side effect eager never
has, and the user's answer trusted), and a set guard hashed the elements of the caller's set
before knowing they were plain (a user __hash__ ran in the guard). Keys whose == is Python code
are now compared by identity; a set's elements are type-checked before they are hashed."""
import torch

import bytegraph

LOG = []


class K:
    def __init__(self, v, w=0):
        self.v, self.w = v, w

    def __hash__(self):
        LOG.append(("hash", self.v))
        return self.v

    def __eq__(self, o):
        LOG.append(("eq", self.v))
        return isinstance(o, K) and self.v == o.v


def _run(fn, make_args, calls=3):
    bytegraph.reset()
    c = bytegraph.compile(fn, backend="eager")
    for i in range(calls):
        args = make_args(i)
        LOG.clear()
        want = fn(*args)
        want_log = list(LOG)
        args = make_args(i)
        LOG.clear()
        got = c(*args)
        assert LOG == want_log, (i, LOG, want_log)
        assert repr(want) == repr(got) or torch.equal(want[0], got[0]), (i, want, got)


def test_dict_with_user_keys_guard_runs_no_eq():
    def f(x, d):
        return (x + len(d),)
    _run(f, lambda i: (torch.ones(2), {K(1): 1}))


def test_dict_with_user_keys_reads_the_new_key():
    def f(x, d):
        for k in d:
            return (x + k.w,)
    _run(f, lambda i: (torch.ones(2), {K(1, w=i): 1}))


def test_dict_view_membership_with_user_keys():
    def f(x, d):
        return (x + (K(1) in d.keys()), d.keys() & {K(1)})
    _run(f, lambda i: (torch.ones(2), {K(1): 1, K(2): 2}))


def test_set_guard_hashes_no_user_object():
    S = set()
    a, b = K(1), K(2)

    def f(x, s, a, b):
        s.add(a)
        s.add(b)
        return (x * len(s),)
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager")
    c(torch.ones(2), S, a, b)        # S was empty: the entry guards an empty set
    LOG.clear()
    c(torch.ones(2), S, a, b)        # now it holds a and b: the guard must not hash them
    assert LOG == [("hash", 1), ("hash", 2)], LOG


def test_set_of_tuples_holding_user_objects_is_refused_not_hashed():
    def f(x, s):
        return (x * len(s),)
    items = {(K(1),)}
    LOG.clear()
    want = f(torch.ones(2), items)
    c = bytegraph.compile(f, backend="eager")
    LOG.clear()
    for _ in range(3):
        got = c(torch.ones(2), items)
    assert torch.equal(want[0], got[0])
    assert LOG == [], LOG
