"""Differential programs: globals (read/write), closure cells, argument-container mutation, mixed returns."""
import copy

import pytest
import torch

from differential import assert_same, check, compile_fn, graph_count, reset, tensors_like


def ids(fn):
    return fn.__name__


# --------------------------------------------------------------------------- globals
GLOBAL_T = torch.arange(4.0)
SCALE = 3
CONFIG = {"eps": 1e-3, "act": "relu", "dims": (3, 4)}
NAMES = ("a", "b")


def _global_helper(t):
    return t * SCALE


counter = 0
total = 0.0
history = []
registry = {}
state_t = torch.zeros(4)
rebound_t = torch.ones(4)
flag = False


def glob_read(x):
    return x + GLOBAL_T, x * SCALE, _global_helper(x), CONFIG["eps"], NAMES[1]


def glob_read_config_branch(x):
    if CONFIG["act"] == "relu":
        x = torch.relu(x)
    return x.view(*CONFIG["dims"]) + CONFIG["eps"]


def glob_read_module_attr(x):
    return x * torch.pi + torch.float32.itemsize, copy.deepcopy is not None


@pytest.mark.parametrize("fn", [glob_read, glob_read_config_branch, glob_read_module_attr], ids=ids)
def test_global_reads(fn):
    check(fn, *tensors_like((3, 4)))


def glob_counter(x):
    global counter
    counter += 1
    return x + counter


def glob_float_and_flag(x):
    global total, flag
    total = total + 0.5
    flag = not flag
    return x * total, flag


def glob_list_append(x):
    history.append(x.sum())
    history.append("tag")
    return x * len(history)


def glob_dict_set(x):
    registry["last"] = x * 2
    registry.setdefault("count", 0)
    registry["count"] += 1
    return registry["last"] + registry["count"]


def glob_tensor_inplace(x):
    state_t.add_(x.sum(0))
    return state_t * 2


def glob_tensor_rebind(x):
    global rebound_t
    rebound_t = rebound_t + x[0]
    return rebound_t.sum()


def glob_create_new(x):
    global created_later
    n = x.shape[0] * 7
    created_later = n  # reading it back in the same frame breaks the graph in torch.compile
    return x + n


GLOBAL_NAMES = ["counter", "total", "flag", "history", "registry", "state_t", "rebound_t", "created_later"]
_MISSING = object()


def _snapshot():
    g = globals()
    return {n: copy.deepcopy(g[n]) if n in g else _MISSING for n in GLOBAL_NAMES}


def _restore(snap):
    g = globals()
    for n, v in snap.items():
        if v is _MISSING:
            g.pop(n, None)
        else:
            g[n] = copy.deepcopy(v)


def _observable_globals():
    g = globals()
    return {n: g[n] for n in GLOBAL_NAMES if n in g}


def check_globals(fn, *args, n_calls=1, graphs=1):
    """Run fn eagerly and compiled from the same global start state; compare outputs and globals after."""
    start = _snapshot()
    try:
        _restore(start)
        expected = [fn(*copy.deepcopy(args)) for _ in range(n_calls)]
        eager_globals = copy.deepcopy(_observable_globals())
        _restore(start)
        reset()
        compiled = compile_fn(fn, backend="eager", fullgraph=True)
        actual = [compiled(*copy.deepcopy(args)) for _ in range(n_calls)]
        comp_globals = copy.deepcopy(_observable_globals())
    finally:
        _restore(start)
    assert_same(expected, actual)
    assert_same(eager_globals, comp_globals, path="globals-after")
    if graphs is not None:
        assert graph_count() == graphs


GLOBAL_WRITERS = [glob_counter, glob_float_and_flag, glob_list_append, glob_dict_set, glob_tensor_inplace,
                  glob_tensor_rebind, glob_create_new]


@pytest.mark.parametrize("fn", GLOBAL_WRITERS, ids=ids)
def test_global_writes(fn):
    check_globals(fn, *tensors_like((3, 4)))


@pytest.mark.parametrize("fn", [glob_counter, glob_list_append, glob_tensor_inplace], ids=ids)
def test_global_writes_called_twice(fn):
    # the second call may legitimately recompile (guards on the changed global): don't pin the count
    check_globals(fn, *tensors_like((3, 4)), n_calls=2, graphs=None)


# --------------------------------------------------------------------------- closure cells
def make_counter_closure():
    count = 0
    acc = None

    def step(x):
        nonlocal count, acc
        count += 1
        acc = x * count if acc is None else acc + x
        return acc

    def get():
        return count, acc

    return step, get


def make_list_closure():
    seen = []
    cfg = {"n": 0}

    def step(x):
        seen.append(x.mean())
        cfg["n"] += 1
        return x - seen[-1]

    def get():
        return seen, cfg

    return step, get


def make_nested_closure():
    depth = 0

    def outer(x):
        def inner(t):
            nonlocal depth
            depth += 10
            return t + depth

        return inner(inner(x))

    def get():
        return depth

    return outer, get


@pytest.mark.parametrize("factory", [make_counter_closure, make_list_closure, make_nested_closure], ids=ids)
def test_closure_cell_mutation(factory):
    (x,) = tensors_like((3, 4))
    step_e, get_e = factory()
    step_c, get_c = factory()
    reset()
    compiled = compile_fn(step_c, backend="eager", fullgraph=True)
    expected = step_e(x.clone())
    actual = compiled(x.clone())
    assert_same(expected, actual)
    assert_same(get_e(), get_c(), path="closure-after")
    assert graph_count() == 1


# --------------------------------------------------------------------------- argument container mutation
def arg_list_append(xs, x):
    xs.append(x * 2)
    xs.append(3)
    return x + 1


def arg_list_pop_insert(xs, x):
    last = xs.pop()
    xs.insert(0, last * 2)
    return last + x


def arg_list_sort_reverse(xs, x):
    xs.reverse()
    return x * len(xs)


def arg_list_setitem_extend_clear(xs, x):
    xs[0] = xs[0] + x
    xs.extend([x, x * 3])
    del xs[1]
    return x.sum()


def arg_list_of_tensors_inplace(xs, x):
    for t in xs:
        t.mul_(2)
    return x


def arg_list_clear(xs, x):
    n = len(xs)
    xs.clear()
    return x * n


@pytest.mark.parametrize("fn", [arg_list_append, arg_list_pop_insert, arg_list_sort_reverse,
                                arg_list_setitem_extend_clear, arg_list_of_tensors_inplace, arg_list_clear], ids=ids)
def test_list_argument_mutation(fn):
    a, b, x = tensors_like((3, 4), (3, 4), (3, 4))
    check(fn, [a, b], x)


def arg_dict_set(d, x):
    d["k"] = x * 2
    d["n"] = d.get("n", 0) + 1
    return d["a"] + x


def arg_dict_pop_update(d, x):
    a = d.pop("a")
    d.update({"b": a + x, "z": 1})
    return a


def arg_dict_setdefault_del(d, x):
    d.setdefault("lst", []).append(x)
    del d["a"]
    return x * 2


def arg_dict_value_inplace(d, x):
    d["a"].add_(x)
    return d["a"].sum()


@pytest.mark.parametrize("fn", [arg_dict_set, arg_dict_pop_update, arg_dict_setdefault_del, arg_dict_value_inplace],
                         ids=ids)
def test_dict_argument_mutation(fn):
    a, x = tensors_like((3, 4), (3, 4))
    check(fn, {"a": a, "n": 5}, x)


def arg_nested_mutation(cfg, x):
    cfg["layers"].append(x.sum())
    cfg["meta"]["calls"] += 1
    return x * cfg["meta"]["calls"]


def test_nested_container_argument_mutation():
    (x,) = tensors_like((3, 4))
    check(arg_nested_mutation, {"layers": [], "meta": {"calls": 1}}, x)


def arg_set_add(s, x):
    s.add("seen")
    s.discard(1)
    return x + len(s)


def test_set_argument_mutation():
    (x,) = tensors_like((3, 4))
    check(arg_set_add, {1, 2}, x)


# --------------------------------------------------------------------------- mixed returns
def ret_tensor_and_constants(x):
    return x * 2, 3, "name", None, 1.5, True


def ret_constant_containers(x):
    return {"out": x + 1, "n": 4, "shape": tuple(x.shape)}, [x.sum(), "s"], (None,)


def ret_same_tensor_twice(x):
    y = x + 1
    return y, y, x


def ret_input_unchanged(x):
    return x, x.sum()


def ret_views(x):
    return x.view(-1), x[0], x.t()


@pytest.mark.parametrize("fn", [ret_tensor_and_constants, ret_constant_containers, ret_same_tensor_twice,
                                ret_input_unchanged, ret_views], ids=ids)
def test_mixed_returns(fn):
    check(fn, *tensors_like((3, 4)))


def ret_only_constants(x):
    return 1, "a", (2, 3)


def test_return_only_constants_no_graph():
    check(ret_only_constants, *tensors_like((3, 4)), graphs=0)
