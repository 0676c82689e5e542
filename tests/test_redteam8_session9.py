"""Red team 8: session 9's work -- torch.vmap over traced code (policy/vmap.py), pytree
functions over Values (policy/pytrees.py), functools.cached_property's lock model, and
generator-based context managers entered at a stop (breaks8). Differential against eager:
results, stdout, arguments afterwards, cache hits on a second call.

Bugs found:
- `tree_unflatten(leaves, spec)` with a spec holding a dict (`tree_flatten({"a": x})`, or a
  constant tuple with a dict inside) returned the model's `_Leaf` stand-ins inside the dict:
  a wrong result. The model now declines such trees (the call is a graph break), and a
  TreeSpec constant never becomes a graph argument (fx printed its repr: a SyntaxError, an
  internal error).
- `obj.__dict__` of an object of a class with `__slots__` (no `__dict__`) was a dict (made in
  the trace: its slot values; from the caller: a guard that raised): CPython raises
  AttributeError, so `functools.cached_property` on such a class returned a value where eager
  raises TypeError, `hasattr(obj, "__dict__")` was True and `vars(obj)` a dict. A class with
  slots *and* a `__dict__` showed its slot values in `__dict__`.
"""
import collections
import contextlib
import dataclasses
import functools

import pytest
import torch
import torch.utils._pytree as pytree

import bytegraph
from differential import REFERENCE, compile_fn, counters, reset
from redteam8_harness import run, fallbacks, internal_errors

X = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
W = torch.randn(3, generator=torch.Generator().manual_seed(1))


# -- vmap -----------------------------------------------------------------------------------

def vmap_partial(x, w):
    def body(r, w, k):
        return (r * w).sum() * k
    return torch.vmap(functools.partial(body, k=3.0), in_dims=(0, None))(x, w)


_LIN = torch.nn.Linear(3, 2)


def vmap_module(x):
    return torch.vmap(_LIN)(x)


def vmap_func_namespace(x):
    return torch.func.vmap(lambda r: r.sin() * 2)(x)


def vmap_negative_dims(x):
    return torch.vmap(lambda c: c.cumsum(0), in_dims=-1, out_dims=-1)(x)


def vmap_chunked(x):
    return torch.vmap(lambda r: r.softmax(0), chunk_size=3)(x)


def vmap_random_different(x):
    torch.manual_seed(5)
    return torch.vmap(lambda r: r + torch.rand(()), randomness="different")(x), torch.rand(2)


def vmap_random_same(x):
    torch.manual_seed(5)
    return torch.vmap(lambda r: r + torch.randn(3), randomness="same")(x), torch.randn(1)


def vmap_random_error(x):
    return torch.vmap(lambda r: r + torch.rand(()))(x)


def vmap_inplace_body(x):
    def body(r):
        y = r * 2
        y.add_(1)
        return y
    return torch.vmap(body)(x)


def vmap_inplace_input(x):
    return torch.vmap(lambda r: r.mul_(2))(x), x


def vmap_body_appends(x, log):
    def body(r):
        log.append(1)
        return r * 2
    return torch.vmap(body)(x)


def vmap_nested(x, y):
    return torch.vmap(lambda a: torch.vmap(lambda b: a * b)(y))(x)


def vmap_out_none(x, w):
    return torch.vmap(lambda r, w: (r * w, w * 2), in_dims=(0, None), out_dims=(0, None))(x, w)


def vmap_identity_then_write(x):
    y = torch.vmap(lambda r: r)(x)
    y.add_(1)
    return y, x


def vmap_view_then_write(x):
    y = torch.vmap(lambda r: r[:2])(x)
    y.mul_(10)
    return y, x


def vmap_closure_from_list(x, holder):
    w = holder[0]
    return torch.vmap(lambda r: r * w)(x)


def vmap_made_before_break(x):
    f = torch.vmap(lambda r: r * 3)
    print("between")
    return f(x)


def vmap_body_item(x):
    return torch.vmap(lambda r: r * r.sum().item())(x)


def vmap_kwarg_unbatched(x, y):
    return torch.vmap(lambda a, b: a + b)(x, b=y)


_VMAP = [
    (vmap_partial, [(X, W)]),
    (vmap_module, [(X,)]),
    (vmap_func_namespace, [(X,)]),
    (vmap_negative_dims, [(X,)]),
    (vmap_chunked, [(X,)]),
    (vmap_random_different, [(X,)]),
    (vmap_random_same, [(X,)]),
    (vmap_random_error, [(X,)]),
    (vmap_inplace_body, [(X,)]),
    (vmap_inplace_input, [(X.clone(),)]),
    (vmap_body_appends, [(X, [])]),
    (vmap_nested, [(X, torch.randn(5, 3))]),
    (vmap_out_none, [(X, W)]),
    (vmap_identity_then_write, [(X.clone(),)]),
    (vmap_view_then_write, [(X.clone(),)]),
    (vmap_closure_from_list, [(X, [W]), (X, [W * 2])]),
    (vmap_made_before_break, [(X,)]),
    (vmap_body_item, [(X,)]),
    (vmap_kwarg_unbatched, [(X, W)]),
]


@pytest.mark.parametrize("fn,argsets", _VMAP, ids=[c[0].__name__ for c in _VMAP])
def test_vmap(fn, argsets):
    run(fn, *argsets)
    assert internal_errors() == 0


SCALE = 2.0


def _scaled(x):
    return torch.vmap(lambda r: r * SCALE)(x)


def test_vmap_body_reads_a_global_that_changes():
    global SCALE
    reset()
    c = compile_fn(_scaled, backend="eager")
    try:
        for s in (2.0, 3.0, 2.0):
            SCALE = s
            assert torch.equal(_scaled(X), c(X))
    finally:
        SCALE = 2.0


# -- pytrees -------------------------------------------------------------------------------

CONST = (1, {"a": 2, "b": (3, 4)}, [5])
NT = collections.namedtuple("NT", "a b", defaults=(5,))


@dataclasses.dataclass
class DC:
    a: torch.Tensor
    b: int


pytree.register_pytree_node(DC, lambda d: ([d.a, d.b], None), lambda xs, c: DC(*xs))


def pytree_const_with_dict(x):
    leaves, spec = pytree.tree_flatten((x, CONST))
    return leaves, pytree.tree_unflatten(list(leaves), spec)


def pytree_dict_roundtrip(x):
    leaves, spec = pytree.tree_flatten({"a": x, "b": [x * 2, 3]})
    return pytree.tree_unflatten([l * 2 if isinstance(l, torch.Tensor) else l for l in leaves], spec)


def pytree_dict_argument(d):
    leaves, spec = pytree.tree_flatten(d)
    return pytree.tree_unflatten(leaves, spec), spec.num_leaves


def pytree_map_const_with_dict(x):
    return pytree.tree_map(lambda v: v * 2, (x, CONST))


def pytree_map_dict(x):
    return pytree.tree_map(torch.sin, {"a": x, "b": (x,)})


def pytree_namedtuple(x):
    t = NT(x)
    return pytree.tree_map(lambda v: v * 2, t), pytree.tree_leaves(t)


def pytree_structseq(x):
    m = x.max(0)
    leaves, spec = pytree.tree_flatten(m)
    return leaves, pytree.tree_map(lambda t: t + 1, m)


def pytree_registered_dataclass(x):
    d = DC(x, 3)
    r = pytree.tree_map(lambda v: v * 2, d)
    return r.a, r.b, pytree.tree_leaves([d, x])


def pytree_map_effects(x, log):
    def f(v):
        log.append(tuple(v.shape))
        return v + len(log)
    return pytree.tree_map(f, (x, [x, x]))


def pytree_two_trees(x):
    return pytree.tree_map(lambda a, b: a + b, (x, x), (x, 1))


def pytree_is_leaf(x):
    return pytree.tree_map(lambda v: v * 2 if isinstance(v, torch.Tensor) else len(v), [x, (1, 2)],
                           is_leaf=lambda v: isinstance(v, tuple))


_PYTREE = [
    (pytree_const_with_dict, [(W,)]),
    (pytree_dict_roundtrip, [(W,)]),
    (pytree_dict_argument, [({"a": W, "b": (W, 1)},)]),
    (pytree_map_const_with_dict, [(W,)]),
    (pytree_map_dict, [(W,)]),
    (pytree_namedtuple, [(W,)]),
    (pytree_structseq, [(X,)]),
    (pytree_registered_dataclass, [(W,)]),
    (pytree_map_effects, [(W, [])]),
    (pytree_two_trees, [(W,)]),
    (pytree_is_leaf, [(W,)]),
]


@pytest.mark.parametrize("fn,argsets", _PYTREE, ids=[c[0].__name__ for c in _PYTREE])
def test_pytree(fn, argsets):
    run(fn, *argsets)
    assert internal_errors() == 0


# -- cached_property and __slots__ -----------------------------------------------------------

class Cached:
    def __init__(self, x, fail=False):
        self.x, self.fail, self.n = x, fail, 0

    @functools.cached_property
    def sq(self):
        self.n += 1
        self.other = self.n * 10
        if self.fail:
            raise ValueError("nope")
        return self.x * self.x


def cached_read(a, log):
    try:
        v = a.sq
    except ValueError as e:
        log.append(str(e))
        v = a.x
    return v + 1, a.n, getattr(a, "other", None), "sq" in a.__dict__


class Slotted:
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    @functools.cached_property
    def sq(self):
        return self.x * 2


class SlottedSub(Slotted):
    pass


class SlotsAndDict:
    __slots__ = ("x", "__dict__")

    def __init__(self, x):
        self.x = x


def cached_on_slots(x):
    return Slotted(x).sq            # TypeError: no __dict__ to cache in


def slots_dict_made(x):
    s = Slotted(x)
    try:
        s.__dict__
    except AttributeError as e:
        return str(e), hasattr(s, "__dict__"), x + 1
    return "has a dict", x


def slots_vars(x):
    try:
        return vars(Slotted(x)), x
    except TypeError as e:
        return str(e), x + 1


def slots_dict_argument(s):
    try:
        s.__dict__
    except AttributeError as e:
        return str(e), s.x + 1
    return "has a dict", s.x


def slots_subclass_dict(x):
    s = SlottedSub(x)
    s.y = 1
    return s.__dict__, x + 1


def slots_and_dict(x):
    s = SlotsAndDict(x)
    s.z = 2
    return s.__dict__, x + 1


def cached_subclass_super(a):
    return a.sq, a.n


_CACHED = [
    (cached_read, [(Cached(W, True), []), (Cached(W), [])]),
    (cached_on_slots, [(W,)]),
    (slots_dict_made, [(W,)]),
    (slots_vars, [(W,)]),
    (slots_subclass_dict, [(W,)]),
    (slots_and_dict, [(W,)]),
]


@pytest.mark.parametrize("fn,argsets", _CACHED, ids=[c[0].__name__ for c in _CACHED])
def test_cached_property_and_slots(fn, argsets):
    run(fn, *argsets)
    assert internal_errors() == 0


def test_slots_dict_of_an_argument():
    reset()
    c = compile_fn(slots_dict_argument, backend="eager")
    s = Slotted(W)
    for _ in range(2):
        assert c(s)[0] == slots_dict_argument(s)[0]
    assert REFERENCE or counters()["stats"].get("guard_errors", 0) == 0
    assert not fallbacks(), fallbacks()


def test_cached_property_deleted_between_calls():
    reset()
    c = compile_fn(lambda a: (a.sq * 2, a.n), backend="eager")
    ae, ac = Cached(W), Cached(W)
    for i in range(4):
        want, got = (ae.sq * 2, ae.n), c(ac)
        assert torch.equal(want[0], got[0]) and want[1] == got[1]
        if i % 2 == 0:
            del ae.sq, ac.sq
            ae.x, ac.x = ae.x + 1, ac.x + 1
    assert ae.n == ac.n and ae.__dict__.keys() == ac.__dict__.keys()


# -- generator context managers entered at a stop ------------------------------------------

@contextlib.contextmanager
def _cm(log, suppress=False, tag="c"):
    log.append(tag + "-enter")
    try:
        yield len(log)
    except ValueError as e:
        log.append(tag + "-caught " + str(e))
        if not suppress:
            raise
    finally:
        log.append(tag + "-exit")


def cm_raise(x, suppress, log):
    with _cm(log, suppress):
        y = x * 2
        if y.sum() > -100:
            raise ValueError("data")
        log.append("after")
    return y


def cm_return_inside(x, suppress, log):
    with _cm(log) as k:
        y = x + k
        log.append("ret")
        return y.exp()


def cm_nested_with_print(x, suppress, log):
    with _cm(log, tag="outer") as a:
        with _cm(log, tag="inner") as b:
            y = x * a + b
            print("inside", a, b)
        log.append("between")
    return y


def cm_break_continue(x, suppress, log):
    for i in range(3):
        with _cm(log, tag=str(i)):
            if i == 1:
                continue
            if i == 2:
                break
            x = x + 1
    return x


def cm_cudnn_flags_raise(x, suppress, log):
    try:
        with torch.backends.cudnn.flags(enabled=False, benchmark=True):
            y = x * 2
            raise KeyError("k")
    except KeyError:
        log.append((torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark))
    return x


def cm_fork_rng(x, suppress, log):
    torch.manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(123)
        a = torch.rand(2)
    return a, torch.rand(2), x + 1


_CMS = [cm_raise, cm_return_inside, cm_nested_with_print, cm_break_continue, cm_cudnn_flags_raise,
        cm_fork_rng]


@pytest.mark.parametrize("suppress", [False, True])
@pytest.mark.parametrize("fn", _CMS, ids=[f.__name__ for f in _CMS])
def test_generator_context_manager(fn, suppress):
    run(fn, (W, suppress, []))
