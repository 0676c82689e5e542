"""The opcode table covers the running Python, and (Thunder-style) each opcode family below
really appears in its test function's bytecode and then runs differentially."""
import dis
import types
from dataclasses import dataclass

import pytest
import torch

import bytegraph.symbolic  # noqa: F401  (registers the handlers)
from bytegraph.symbolic.table import HANDLERS, UNSUPPORTED
from differential import check, tensors_like


def test_every_opcode_has_handler_or_reason():
    missing = sorted(set(dis.opmap) - set(HANDLERS) - set(UNSUPPORTED))
    assert not missing, f"opcodes with neither handler nor reason: {missing}"


def test_no_opcode_both_handled_and_unsupported():
    both = sorted(set(HANDLERS) & set(UNSUPPORTED))
    assert not both, both


def test_table_only_names_real_opcodes():
    assert set(HANDLERS) <= set(dis.opmap)
    assert set(UNSUPPORTED) <= set(dis.opmap)
    assert all(isinstance(r, str) and r for r in UNSUPPORTED.values())
    assert all(callable(h) for h in HANDLERS.values())


def opnames(fn):
    """Opnames of fn's code and every nested code object (comprehensions, lambdas, generators)."""
    names, todo = set(), [fn.__code__]
    while todo:
        code = todo.pop()
        for inst in dis.get_instructions(code):
            names.add(inst.opname)
        todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def assert_ops(fn, *ops):
    present = opnames(fn)
    missing = [op for op in ops if op not in present]
    assert not missing, f"{fn.__name__} lacks {missing}; has {sorted(present)}"


X, Y = tensors_like((3, 4), (3, 4))


# --------------------------------------------------------------------------

def op_unpack_ex(xs):
    a, *mid, b = xs
    first, *rest = mid
    return a + b + first * len(rest)


def test_unpack_ex():
    assert_ops(op_unpack_ex, "UNPACK_EX")
    check(op_unpack_ex, [X, Y, X * 2, Y * 3, X - 1])


def op_const_key_map(x):
    d = {"a": x, "b": x * 2, "c": 3}
    return d["a"] + d["b"] * d["c"]


def test_build_const_key_map():
    assert_ops(op_const_key_map, "BUILD_CONST_KEY_MAP")
    check(op_const_key_map, X)


def _kw(a, b, c=1, **rest):
    return a * b + c + sum(rest.values())


def op_dict_merge(x, extra):
    opts = {"c": 2}
    return _kw(x, b=x, **opts, **extra)


def test_dict_merge_and_call_function_ex():
    assert_ops(op_dict_merge, "DICT_MERGE", "CALL_FUNCTION_EX")
    check(op_dict_merge, X, {"d": Y, "e": 3})


def op_call_ex_star(x, args):
    return torch.stack([*args, x]).sum(0) + _kw(*args, c=0)


def test_call_function_ex_star_args_list_extend_list_to_tuple():
    assert_ops(op_call_ex_star, "CALL_FUNCTION_EX", "LIST_EXTEND")
    check(op_call_ex_star, X, [Y, Y * 2])


def op_list_to_tuple(x, ys):
    t = (x, *ys, x)
    return sum(t) / len(t)


def test_list_to_tuple():
    assert_ops(op_list_to_tuple, "LIST_TO_TUPLE")
    check(op_list_to_tuple, X, [Y, Y + 1])


def op_format_value(x, n, name):
    key = f"{name}_{n:03d}_{n!r}_{1.5:.2f}"
    table = {"w_007_7_1.50": 2.0}
    return x * table.get(key, -1.0), key


def test_format_value_build_string():
    assert_ops(op_format_value, "FORMAT_VALUE", "BUILD_STRING")
    check(op_format_value, X, 7, "w")


def op_chained_compare(x, n):
    if 0 < n <= 5 < n * 10:
        return x + n
    return x - n


def test_swap_copy_chained_comparison():
    assert_ops(op_chained_compare, "SWAP", "COPY")
    check(op_chained_compare, X, 3)
    check(op_chained_compare, X, 9)


@dataclass
class Point:
    x: object
    y: object


def op_match_class(p):
    match p:
        case Point(x=a, y=None):
            return a * 2
        case Point(a, b):
            return a + b
        case _:
            return p


def test_match_class():
    assert_ops(op_match_class, "MATCH_CLASS")
    check(op_match_class, Point(X, Y))
    check(op_match_class, Point(X, None))


def op_match_mapping_sequence(v):
    match v:
        case {"t": t, **rest}:
            return t * len(rest)
        case [a, b, *others]:
            return a - b + len(others)
        case _:
            return v


def test_match_mapping_sequence_keys_len():
    assert_ops(op_match_mapping_sequence, "MATCH_MAPPING", "MATCH_KEYS", "MATCH_SEQUENCE", "GET_LEN")
    check(op_match_mapping_sequence, {"t": X, "u": 1})
    check(op_match_mapping_sequence, [X, Y, 1, 2])


def _inner_gen(x):
    yield x
    yield x * 2
    return 10


def op_yield_from(x):
    def outer(x):
        r = yield from _inner_gen(x)
        yield x + r
    return sum(outer(x))


def op_yield_from_plain(x):
    def outer(x):
        yield from _inner_gen(x)
        yield x
    return sum(outer(x))


def test_send_yield_from():
    assert_ops(op_yield_from_plain, "SEND", "GET_YIELD_FROM_ITER", "YIELD_VALUE", "RETURN_GENERATOR")
    check(op_yield_from_plain, X)


def test_send_yield_from_return_value():
    assert_ops(op_yield_from, "SEND")
    check(op_yield_from, X)


def op_before_with(x):
    with torch.no_grad():
        y = x * 2
    return y + 1, y.requires_grad


def test_before_with():
    assert_ops(op_before_with, "BEFORE_WITH")
    check(op_before_with, X.clone().requires_grad_())


class _Ctx:
    def __init__(self):
        self.log = []

    def __enter__(self):
        self.log.append("enter")
        return 5

    def __exit__(self, *exc):
        self.log.append("exit")
        return False


def op_user_with(x, ctx):
    with ctx as k:
        y = x * k
    return y


def test_before_with_user_context_manager():
    assert_ops(op_user_with, "BEFORE_WITH")
    check(op_user_with, X, _Ctx())


def op_kw_names(x):
    return torch.sum(x, dim=1, keepdim=True) + torch.clamp(x, min=-0.5, max=0.5)


def test_kw_names():
    assert_ops(op_kw_names, "KW_NAMES")
    check(op_kw_names, X)


def op_cells(x):
    acc = x

    def add(v):
        nonlocal acc
        acc = acc + v
        return acc
    add(1)
    add(x)
    del_me = 3

    def read():
        return del_me
    return acc * read()


def test_make_cell_load_store_deref():
    assert_ops(op_cells, "MAKE_CELL", "LOAD_DEREF", "STORE_DEREF", "LOAD_CLOSURE", "COPY_FREE_VARS")
    check(op_cells, X)


def op_or_pop(x, a, b):
    k = a or b
    j = a and b
    return x * k + j


def test_jump_if_true_or_false_or_pop():
    assert_ops(op_or_pop, "JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP")
    check(op_or_pop, X, 0, 3)
    check(op_or_pop, X, 2, 3)


def op_comprehensions(x):
    lst = [x * i for i in range(3) if i != 1]
    st = {i * i for i in range(-2, 3)}
    dct = {i: x + i for i in range(2)}
    return sum(lst) + len(st) + dct[1]


def test_comprehensions_list_append_set_add_map_add():
    assert_ops(op_comprehensions, "LIST_APPEND", "SET_ADD", "MAP_ADD", "FOR_ITER", "GET_ITER",
               "JUMP_BACKWARD")
    check(op_comprehensions, X)


def op_build_set_update(x, s):
    t = {1, 2, *s}
    return x * len(t) + (3 in t)


def test_set_update_contains():
    assert_ops(op_build_set_update, "SET_UPDATE", "CONTAINS_OP")
    check(op_build_set_update, X, [2, 3, 4])


def op_dict_update(x, d):
    e = {**d, "z": 1}
    return x * len(e)


def test_dict_update():
    assert_ops(op_dict_update, "DICT_UPDATE")
    check(op_dict_update, X, {"a": 1, "b": 2})


def op_subscr(x):
    lst = [x, x + 1, x + 2]
    lst[1] = lst[1] * 10
    del lst[0]
    d = {"a": x}
    d["b"] = x[1:, ::2].sum()
    del d["a"]
    return lst[0] + d["b"] + x[0, 1:3].sum()


def test_store_delete_subscr_build_slice():
    assert_ops(op_subscr, "STORE_SUBSCR", "DELETE_SUBSCR", "BUILD_SLICE", "BINARY_SUBSCR")
    check(op_subscr, X)


class Box:
    pass


def op_attrs(x, b):
    b.val = x * 2
    b.tmp = 1
    del b.tmp
    return b.val + 1


def test_store_delete_attr():
    assert_ops(op_attrs, "STORE_ATTR", "DELETE_ATTR", "LOAD_ATTR")
    check(op_attrs, X, Box())


def op_unary_is(x, n, o):
    r = -x + (+x) - (~n) * (not n) + int(n is o) - int(n is not None)
    if o is None:
        r = r + 1
    if o is not None:
        r = r - 1
    return r


def test_unary_and_is_op_none_jumps():
    assert_ops(op_unary_is, "UNARY_NEGATIVE", "UNARY_POSITIVE", "UNARY_INVERT", "UNARY_NOT", "IS_OP")
    check(op_unary_is, X, 2, None)
    check(op_unary_is, X, 0, 5)


def op_loop_while(x, n):
    i = 0
    while i < n:
        x = x * 0.5
        i += 1
    return x


def test_backward_jumps():
    assert_ops(op_loop_while, "POP_JUMP_BACKWARD_IF_TRUE")
    check(op_loop_while, X, 4)


def op_try_except(x, d):
    try:
        v = d["missing"]
    except KeyError:
        v = 2
    return x * v


def test_exception_handling_opcodes():
    assert_ops(op_try_except, "PUSH_EXC_INFO", "CHECK_EXC_MATCH", "POP_EXCEPT")
    check(op_try_except, X, {"a": 1})


def op_import(x):
    import math
    from operator import mul
    return mul(x, math.pi)


def test_import_name_from():
    assert_ops(op_import, "IMPORT_NAME", "IMPORT_FROM")
    check(op_import, X)


def _from_source(src, name):
    """Build a function from source so pytest's assert rewriting does not touch it."""
    ns = {}
    exec(compile(src, __file__, "exec"), ns)
    return ns[name]


def test_load_assertion_error():
    fn = _from_source("def op_assert(x, n):\n    assert n > 0, 'n must be positive'\n    return x * n\n",
                      "op_assert")
    assert_ops(fn, "LOAD_ASSERTION_ERROR")
    check(fn, X, 2)


def op_delete_fast(x):
    y = x + 1
    z = y * 2
    del y
    return z


def test_delete_fast():
    assert_ops(op_delete_fast, "DELETE_FAST")
    check(op_delete_fast, X)


def _make_extended_arg():
    src = "def op_ext(x, n):\n    y = x\n    if n > 0:\n"
    src += "".join(f"        y = y * 1.0 + {i % 3}\n" for i in range(150))
    src += "    return y\n"
    return _from_source(src, "op_ext")


def test_extended_arg():
    fn = _make_extended_arg()
    assert_ops(fn, "EXTENDED_ARG")
    check(fn, X, 1)


G_COUNTER = 0


def op_globals(x):
    global G_COUNTER
    G_COUNTER = G_COUNTER + 1
    return x * G_COUNTER


def test_store_global():
    global G_COUNTER
    assert_ops(op_globals, "STORE_GLOBAL", "LOAD_GLOBAL")
    G_COUNTER = 0
    expected = op_globals(X)          # G_COUNTER: 0 -> 1
    G_COUNTER = 0
    from differential import compile_fn
    from differential import assert_same
    actual = compile_fn(op_globals, backend="eager", fullgraph=True)(X)
    assert G_COUNTER == 1
    assert_same(expected, actual)


def op_make_function(x):
    k = 3

    def scale(t, a=2, *, b=1) -> torch.Tensor:
        return t * a * b + k
    return scale(x) + scale(x, 3, b=4)


def test_make_function_defaults_annotations_closure():
    assert_ops(op_make_function, "MAKE_FUNCTION")
    check(op_make_function, X)


def op_delete_deref(x):
    c = x + 1

    def read():
        return c * 2
    r = read()
    del c
    return r


def test_delete_deref():
    # DELETE_DEREF's handler refuses ("del of a closure variable"): a graph break, correct result
    assert_ops(op_delete_deref, "DELETE_DEREF")
    check(op_delete_deref, X, fullgraph=False, graphs=None)


def op_raise_caught(x, n):
    try:
        if n > 1:
            raise ValueError("big")
        y = x + 1
    except ValueError as e:
        y = x * len(str(e))
    finally:
        y = y - 1
    return y


def test_raise_caught_finally():
    assert_ops(op_raise_caught, "RAISE_VARARGS", "PUSH_EXC_INFO", "CHECK_EXC_MATCH")
    check(op_raise_caught, X, 5)
    check(op_raise_caught, X, 0)


class _Suppress:
    def __enter__(self):
        return self

    def __exit__(self, typ, val, tb):
        return typ is KeyError


def op_with_suppress(x, d):
    y = x
    with _Suppress():
        y = y + 1
        y = y * d["missing"]
    return y


def test_with_except_start_suppresses():
    assert_ops(op_with_suppress, "WITH_EXCEPT_START")
    check(op_with_suppress, X, {"a": 1})
