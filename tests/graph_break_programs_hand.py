"""Handwritten graph-break programs (functions): Python side effects and object identity across
breaks, in-place input mutation, gradients, exceptions crossing breaks, context managers whose
own code breaks, logging order, tensor-driven while loops, several breaks of different kinds,
and breaks inside inlined callees (helpers, lambdas, comprehensions, methods, recursion).

Each program's first decorator argument is its expected graph count (see graph_break_programs'
docstring for the definition); a comment says how it was counted where that is not obvious.
"""
import contextlib
import functools
import os

import torch

import bytegraph
from graph_break_programs import (C_BREAKS, LOG, PROGRAM_FILES, disabled, factory_program,
                                  program, t)

PROGRAM_FILES.add(__file__)
C_BREAKS.add(os.getpid)


def _raise(x):
    raise ValueError(f"refused {x.shape[0]}")


def _maybe_raise(x, i):
    if i == 1:
        raise ValueError(f"odd {i}")
    return x + 1


def _scale(x, k):
    return x * k


dis_raise = disabled(_raise)
dis_maybe_raise = disabled(_maybe_raise)
dis_scale = disabled(_scale)

G_COUNT = 0
G_LIST = []
G_DICT = {}
G_OBJ = None


def x4(rg=True):
    return lambda: (t(4, rg=rg),)


def x4acc(rg=True):
    return lambda: (t(4, rg=rg), [])


# --------------------------------------------------------------------------------------------
# side effects around breaks

@program(2, "top", "print", inputs=lambda: (t(4, rg=True), [1]))
def se_list_append_arg(x, lst):
    lst.append(len(lst))
    y = x * 2
    print("mid", lst)
    lst.append("after")
    return y + 1, lst


@program(2, "top", "graph_break", inputs=lambda: (t(4, rg=True), {"k": 1}))
def se_dict_writes_arg(x, d):
    d["a"] = x.sin()
    d["k"] += 1
    bytegraph.graph_break()
    d["b"] = d["a"] * d["k"]
    del d["k"]
    return d


@program(2, "top", "graph_break", inputs=x4(), globals_=("G_COUNT",))
def se_global_int(x):
    global G_COUNT
    G_COUNT += 1
    y = x.sin()
    bytegraph.graph_break()
    G_COUNT += 10
    return y * G_COUNT


@program(2, "top", "print", inputs=x4(), globals_=("G_LIST",))
def se_global_list(x):
    G_LIST.append(x.shape[0])
    y = x * 2
    G_LIST.append(y)
    print("global list", len(G_LIST))
    G_LIST.append(G_LIST[1] + 1)
    return G_LIST[-1]


@program(2, "top", "item_arith", inputs=x4(), globals_=("G_DICT",))
def se_global_dict(x):
    G_DICT["k"] = x + 1
    v = G_DICT["k"].sum().item()
    G_DICT["v"] = round(v, 3)
    return x * G_DICT["v"]


@program(2, "top", "print", inputs=x4(), globals_=("G_OBJ",))
def se_global_rebind(x):
    global G_OBJ
    G_OBJ = [x * 2]
    print("rebound")
    G_OBJ.append(G_OBJ[0] + 1)
    return G_OBJ


@factory_program(2, "top", "print", inputs=x4())
def se_nonlocal_closure():
    count = 0
    seen = []

    def fn(x):
        nonlocal count
        count += 1
        y = x * count
        print("count", count)
        count += 1
        seen.append(count)
        return y + count

    def state():
        return {"count": count, "seen": list(seen)}

    def reset():
        nonlocal count
        count = 0
        seen.clear()
    return fn, state, reset


@program(2, "top", "print", inputs=x4())
def id_same_list_twice(x):
    lst = [x + 1]
    print("made")
    lst.append(x * 2)
    return lst, lst


@program(2, "top", "graph_break", inputs=x4())
def id_new_dict(x):
    d = {"a": x.cos()}
    bytegraph.graph_break()
    d["b"] = d["a"] + 1
    return d, d["a"]


class Box:
    def __init__(self, v):
        self.v = v


@program(2, "top", "print", inputs=x4())
def id_user_object(x):
    b = Box(x * 2)
    b.tag = "new"
    print(b.tag)
    b.v = b.v + 1
    b.extra = [b.v]
    return b, b.extra


@program(2, "top", "print", inputs=x4acc())
def id_input_list_returned(x, acc):
    acc.append(x * 2)
    print("acc", len(acc))
    acc.append(acc[0] - 1)
    return acc, acc[0]


@program(2, "top", "tolist", inputs=x4())
def id_tuple_and_list_of_same(x):
    inner = [x.exp()]
    pair = (inner, inner)
    vals = x.tolist()
    inner.append(x * len(vals))
    return pair, {"same": inner}


@program(2, "top", "print", inputs=x4())
def closure_cell_changes_after_break(x):
    k = 3
    g = lambda z: z * k  # noqa: E731
    y = g(x)
    print("k was", k)
    k = 5
    return g(y)


@program(2, "top", "print", inputs=x4())
def closure_defined_before_reads_later_local(x):
    def add_y(z):
        return z + y
    y = x.exp()
    print("y ready")
    return add_y(x)


@program(2, "top", "print", inputs=lambda: (t(4),))
def inplace_input_around_break(x):
    x.add_(1)
    print("a")
    x.mul_(2)
    return x


@program(2, "top", "print", inputs=lambda: (t(4),))
def inplace_view_taken_before_break(x):
    v = x[:2]
    print("view")
    x.mul_(2)
    return v + 0, v


@program(2, "top", "print", inputs=lambda: (t(4), t(4, seed=1)))
def inplace_two_inputs(a, b):
    a.add_(b)
    print("a updated")
    b.mul_(a.sum())
    return a


@program(3, "top", "print+item", inputs=lambda: (t(4, rg=True), t(4, seed=1, rg=True)))
def grads_two_inputs_two_breaks(x, w):
    h = x * w
    print(h.shape)
    z = h.sum().item()
    return h * z + w


@program(3, "top", "graph_break", inputs=x4())
def grads_intermediate_crosses_breaks(x):
    y = x.exp()
    bytegraph.graph_break()
    z = y * y
    bytegraph.graph_break()
    return z.sum() + x.sum()


@program(2, "top", "print", inputs=x4())
def del_and_rebind_local(x):
    y = x * 2
    z = y + 1
    del y
    print("deleted")
    y = z * 3
    return y


@program(2, "top", "print", inputs=x4())
def many_live_locals(x):
    n, f, s, none = 3, 0.5, "s", None
    tup = (1, x)
    lst = [x]
    y = x * n
    print(s)
    return y * f + tup[1] + len(lst), none, s, tup


@program(2, "top", "print",
         inputs=lambda: ((t(4, rg=True), t(4, seed=1)), {"scale": 3.0, "tag": "t"}))
def varargs_kwonly_kwargs(x, *rest, scale=2.0, **opts):
    y = x * scale + rest[0]
    print(opts["tag"], len(rest))
    return y - opts.get("shift", 0.5)


@program(2, "top", "print", inputs=x4())
def generator_created_before_break(x):
    gen = (x * i for i in range(3))
    a = next(gen)
    print("gen started")
    b = next(gen)
    return a + b


@program(2, "top", "c_function", inputs=x4())
def c_function_getpid(x):
    y = x + 1
    ok = os.getpid() > 0
    return y * 2, ok


# --------------------------------------------------------------------------------------------
# value-reading breaks whose result leaves the function

@program(1, "top", "item_return", inputs=x4())
def item_returned(x):
    return x.sum().item()


@program(1, "top", "tolist_return", inputs=x4())
def tolist_returned(x):
    return (x * 2).tolist()


@program(2, "top", "int", inputs=x4())
def int_of_argmax(x):
    i = int(x.argmax())
    return x[i] * 2, i


@program(1, "top", "float", inputs=x4())
def float_of_sum(x):
    return float(x.sum()) + 1


@program(2, "top", "if_any", inputs=x4())
def if_any(x):
    if (x > 0).any():
        return x.relu()
    return x.neg()


@program(2, "top", "item_fstring", inputs=x4())
def item_in_fstring(x):
    msg = f"{x.sum().item():.2f}"
    return x + 1, msg


@program(2, "top", "print_tensor", inputs=lambda: (t(4),))
def print_tensor_value(x):
    y = x * 2
    print(y)
    return y + 1


@program(2, "top", "print_kwargs", inputs=x4())
def print_with_sep_end(x):
    y = x.abs()
    print("a", "b", 3, sep="-", end="!\n")
    return y.log1p()


@program(1, "top", "numpy", inputs=lambda: (t(4),))
def numpy_shares_memory(x):
    # eager: the array shares x's memory, so it shows the in-place update after the break
    arr = x.numpy()
    x.add_(1)
    return arr, x * 2


@program(1, "top", "item_print", inputs=x4())
def item_only_in_print(x):
    print(x.sum().item())
    return x


# --------------------------------------------------------------------------------------------
# several breaks, empty regions

@program(6, "top", "mixed5", inputs=x4())
def five_kinds(x):
    y = x + 1
    print("a")
    s = y.sum().item()
    y = y * s
    vals = y.tolist()
    y = y + len(vals)
    if y.sum() > 0:
        y = y * 2
    bytegraph.graph_break()
    return y - 1


@program(2, "top", "graph_break", inputs=x4())
def consecutive_breaks(x):
    y = x * 2
    bytegraph.graph_break()
    bytegraph.graph_break()
    print("third")
    return y + 1


@program(1, "top", "print", inputs=x4())
def break_first(x):
    print("start")
    return x * 2


@program(1, "top", "print", inputs=x4())
def break_last(x):
    y = x * 2
    print("end")
    return y


@program(0, "top", "print", inputs=x4acc())
def no_tensor_work(x, acc):
    acc.append(1)
    print("only", len(acc))
    return acc


@program(0, "top", "print", inputs=x4())
def break_then_return_input(x):
    print("x")
    return x


# --------------------------------------------------------------------------------------------
# while loops driven by tensors (regions repeat with identical Python state: cache hits)

@program(3, "while_tensor", "if_tensor", inputs=lambda: (t(4, scale=0.6),),
         note="flat 4: the entry graph (mul, abs, max, gt), the loop body (div, abs, max, gt) "
              "twice with identical Python state -> one graph, the exit (add)")
def while_tensor_condition(x):
    x = x * 4
    while x.abs().max() > 1:
        x = x / 2
    return x + 1


@program(4, "while_tensor", "if_tensor+print", inputs=lambda: (t(4).abs() + 2.5,),
         note="flat 6: entry (sum, gt); body (sub) x2 -> 1; after print (sum, gt) x2 -> 1; exit (mul)")
def while_tensor_with_print(x):
    while x.sum() > 0:
        x = x - 2
        print("step")
    return x * 2


@program(3, "while_tensor", "if_tensor", inputs=x4(),
         note="flat 4: entry (mul, abs, sum, gt); continue path (mul, abs, sum, gt) x2 -> 1; "
              "exit (add)")
def while_true_break_on_tensor(x):
    while True:
        x = x * 1.5
        if x.abs().sum() > 10:
            break
    return x + 1


# --------------------------------------------------------------------------------------------
# exceptions crossing breaks

@program(1, "try", "disabled_raise", inputs=x4acc())
def raise_uncaught_after_side_effect(x, acc):
    acc.append("before")
    y = x + 1
    dis_raise(y)
    acc.append("never")
    return y


@program(2, "try", "disabled_raise", inputs=x4acc())
def finally_runs_when_disabled_raises(x, acc):
    try:
        y = x * 2
        dis_raise(y)
    finally:
        acc.append("fin")
        acc.append(x + 1)
    return y


@program(2, "finally", "print", inputs=x4acc())
def finally_after_return(x, acc):
    try:
        return x * 2
    finally:
        print("fin")
        acc.append(x.sum())


@program(2, "try", "print", inputs=x4acc())
def raise_after_break_caught(x, acc):
    try:
        y = x * 2
        print("in try")
        if y.shape[0] == 4:
            raise KeyError("k")
    except KeyError as e:
        y = y - 1
        acc.append(repr(e))
    return y


@program(4, "for_range+try", "disabled_raise", inputs=x4acc(),
         note="each iteration's region differs in i (Python state), no cache hits")
def loop_disabled_raises_once(x, acc):
    for i in range(3):
        x = x + 0.1
        try:
            x = dis_maybe_raise(x, i)
        except ValueError as e:
            x = x * 0.5
            acc.append(str(e))
    return x * 2


class Suppress:
    def __init__(self, acc):
        self.acc = acc

    def __enter__(self):
        self.acc.append("enter")
        return self

    def __exit__(self, typ, val, tb):
        self.acc.append(("exit", typ.__name__ if typ else None, str(val)))
        return True


@program(2, "cm_class", "disabled_raise", inputs=x4acc())
def cm_suppresses_disabled_raise(x, acc):
    y = x * 2
    with Suppress(acc):
        dis_raise(y)
        acc.append("never")
    return y + 1


@program(3, "try", "print", inputs=x4acc())
def nested_try_finally_breaks(x, acc):
    try:
        try:
            y = x * 2
            print("inner")
            y = y + 1
        finally:
            acc.append("inner-fin")
        raise RuntimeError("outer")
    except RuntimeError as e:
        acc.append(str(e))
        print("handled")
        y = y.sigmoid()
    return y


# --------------------------------------------------------------------------------------------
# context managers whose own code breaks (no CALL at the root: see note)

class PrintCM:
    def __init__(self, acc):
        self.acc = acc

    def __enter__(self):
        print("enter")
        self.acc.append("entered")
        return self

    def __exit__(self, *exc):
        print("exit")
        return False


@program(3, "cm_class", "print_in_enter", inputs=x4acc(),
         note="the breaks are inside __enter__/__exit__ (run by BEFORE_WITH / the with's exit), "
              "flattened: (mul) | enter | (add) | exit | (mul)")
def cm_enter_exit_print(x, acc):
    x = x * 2
    with PrintCM(acc):
        x = x + 1
    return x * 3


@contextlib.contextmanager
def noisy(acc):
    print("in")
    acc.append("in")
    yield len(acc)
    print("out")


@program(3, "cm_generator", "print_in_generator", inputs=x4acc(),
         note="breaks inside the generator of a contextmanager, flattened as for PrintCM")
def cm_generator_prints(x, acc):
    x = x.exp()
    with noisy(acc) as n:
        x = x + n
    return x * 3


@program(2, "no_grad+cm_class", "print", inputs=x4acc())
def no_grad_and_user_cm(x, acc):
    with torch.no_grad():
        with Suppress(acc):
            y = x * 2
            print("inside both")
            z = y + x
    return z, z.requires_grad


@program(2, "set_grad_enabled", "graph_break", inputs=x4())
def set_grad_enabled_false(x):
    with torch.set_grad_enabled(False):
        y = x * 2
        bytegraph.graph_break()
        y = y + 1
    return y + x, y.requires_grad


@program(2, "autocast", "print", inputs=lambda: (t(3, 4, rg=True), t(4, 4, seed=1, rg=True)))
def autocast_matmuls_grads(x, w):
    with torch.autocast("cpu"):
        h = x @ w
        print(h.dtype)
        o = h @ w
    return o.float().sum(dim=0)


@program(3, "no_grad", "print", inputs=x4acc())
def two_with_blocks_each_breaking(x, acc):
    with torch.no_grad():
        a = x * 2
        print("first")
    b = a + x
    with torch.enable_grad():
        print("second")
        c = b * 3
    return c, a.requires_grad


# --------------------------------------------------------------------------------------------
# logging mixed with breaks (the handler writes to stdout: order is compared)

@program(2, "top", "logging+print+item", inputs=x4())
def log_order_around_breaks(x):
    LOG.info("start")
    y = x * 2
    print("mid")
    LOG.info("val %.3f", y.sum().item())
    return y


@program(1, "top", "logging+print", inputs=lambda: (t(4),))
def log_tensor_then_inplace(x):
    # eager formats the record when logged: the value before add_
    y = x * 2
    LOG.info("y=%s", y)
    y.add_(1)
    print("p")
    return y


@program(2, "top", "logging+graph_break", inputs=x4acc())
def log_warning_before_break(x, acc):
    LOG.warning("w %d", len(acc))
    acc.append(1)
    y = x.sin()
    bytegraph.graph_break()
    LOG.info("done %d", len(acc))
    return y.cos()


# --------------------------------------------------------------------------------------------
# breaks inside inlined callees

def h_print(z):
    z = z * 2
    print("h")
    return z + 1


@program(3, "helper_d1", "print", inputs=x4())
def helper_called_twice(x):
    a = h_print(x)
    b = h_print(a.sin())
    return a + b


@program(2, "lambda", "print", inputs=x4())
def lambda_breaks(x):
    g = lambda z: (print("lam"), z * 2)[1]  # noqa: E731
    y = g(x + 1)
    return y - 1


@program(3, "listcomp", "item", inputs=lambda: ([t(4, rg=True), t(4, seed=1)],))
def listcomp_item(xs):
    vals = [v.sum().item() for v in xs]
    return xs[0] * sum(vals)


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, x):
        y = x * self.k
        print("scale", self.k)
        self.k += 1
        return y + self.k


@program(3, "method", "print", inputs=x4())
def method_breaks_and_mutates(x):
    s = Scaler(2)
    a = s.apply(x)
    b = s.apply(a)
    return a + b, s.k, s


def rec(x, n):
    x = x + 1
    print("level", n)
    if n == 0:
        return x
    return rec(x * 2, n - 1) - 1


@program(4, "recursion", "print", inputs=x4(),
         note="rec(x, 2): (add) | (mul, add) | (mul, add) | (sub, sub): three levels, one print each")
def recursion_depth3(x):
    return rec(x, 2)


def scale_print(x, k):
    y = x * k
    print("k", k)
    return y - k


@program(2, "partial", "print", inputs=x4())
def partial_breaks(x):
    p = functools.partial(scale_print, k=3.0)
    return p(x) + 1


def inner_va(*a, **k):
    print(k["tag"])
    return a[0] + a[1]


def outer_va(*a, **k):
    return inner_va(*a, **k) * 2


@program(2, "helper_d2", "print", inputs=x4())
def varargs_forwarding_depth2(x):
    return outer_va(x, x * 2, tag="t")


def h_out(z, out):
    out.append(z * 2)
    print(len(out))
    out.append(z + 1)
    return out


@program(2, "helper_d1", "print", inputs=x4())
def helper_mutates_callers_new_list(x):
    res = []
    r = h_out(x, res)
    return res, r is res, res[0] + res[1]


def h2_deep(z):
    print("deep")
    return z * 3


def h1_side(z, acc):
    acc.append("pre")
    r = h2_deep(z + 1)
    acc.append("post")
    return r.sin()


@program(2, "helper_d2", "print", inputs=x4acc())
def depth2_side_effects_around(x, acc):
    return h1_side(x, acc), acc


def d3(z):
    return dis_scale(z * 2, 0.5) + 1


def d2(z):
    return d3(z.cos()) * 2


def d1(z, acc):
    acc.append(len(acc))
    return d2(z + 1) - 1


@program(2, "helper_d3", "disabled_tensor", inputs=x4acc())
def depth3_disabled(x, acc):
    return d1(x, acc), acc


def h_iter(x, i):
    y = x + i
    print(i)
    return y * 2


@program(3, "while_counter+helper_d1", "print", inputs=x4())
def callee_in_while_counter(x):
    i = 0
    while i < 2:
        x = h_iter(x, i)
        i += 1
    return x


# --------------------------------------------------------------------------------------------
# breaks in the middle of an expression or statement: the stack holds partial results

def _ident(v):
    return v


dis_id = disabled(_ident)


def _push(lst, v):
    lst.append(v)


dis_push = disabled(_push)


def three(a, b, c):
    return a + b * c


class Holder:
    def __init__(self):
        self.v = torch.zeros(4)
        self.log = []

    def m(self, z):
        self.log.append(len(self.log))
        return z * 3


@program(1, "mid_expression", "disabled_tensor", inputs=x4())
def mid_binary_operand(x):
    return x + dis_id(x) * 2


@program(1, "mid_expression", "disabled_tensor", inputs=x4())
def mid_list_display(x):
    return [x, dis_id(x), x * 2]


@program(2, "mid_expression", "disabled_tensor", inputs=x4())
def mid_call_arguments(x):
    return three(x, dis_id(x + 1), x * 3)


@program(2, "mid_expression", "disabled_tensor", inputs=x4())
def mid_dict_display(x):
    return {"a": x, "b": dis_id(x * 2), "c": x - 1}


@program(1, "mid_expression", "disabled_list", inputs=lambda: (t(4, rg=True), 3))
def mid_comparison_chain(x, n):
    return 0 < dis_id(n) < 5, x * n


@program(1, "mid_expression", "disabled_list", inputs=x4())
def mid_conditional_expression(x):
    return x * 2 if dis_id(True) else x * 3


@program(1, "mid_expression", "disabled_tensor", inputs=x4())
def mid_nested_disabled_calls(x):
    return dis_id(x * dis_id(3))


@program(2, "mid_expression", "disabled_tensor", inputs=x4())
def mid_for_iterable(x):
    out = x * 2
    for v in dis_id([x, x * 2]):
        out = out + v
    return out


@program(3, "while_counter", "disabled_list", inputs=x4(),
         note="the break is the loop condition: (-) | (add) | (add) | (add) | (-); n differs "
              "each time, so no cache hits")
def mid_while_condition(x):
    n = 0
    while dis_id(n) < 3:
        n += 1
        x = x + 1
    return x, n


@program(2, "mid_expression", "disabled_tensor", inputs=x4())
def mid_unpacking(x):
    a, b = dis_id((x, x * 2))
    c, *rest = dis_id([x, 1, 2])
    return a + b + c, rest


@program(2, "mid_expression", "disabled_tensor", inputs=x4())
def mid_augmented_attribute(x):
    o = Holder()
    o.v += dis_id(x)
    o.v = o.v * 2
    return o.v, o


@program(1, "mid_expression", "disabled_tensor", inputs=lambda: (t(4), {"k": t(4, seed=1)}))
def mid_augmented_subscript(x, d):
    d["k"] += dis_id(x)
    return d


@program(2, "mid_expression", "disabled_tensor", inputs=x4())
def mid_method_call_argument(x):
    o = Holder()
    r = o.m(dis_id(x))
    return r, o.log, o


@program(1, "mid_expression", "disabled_tensor", inputs=x4())
def mid_star_arguments(x):
    args = [x, dis_id(x), 2]
    return three(*args)


@program(1, "mid_expression", "disabled_list", inputs=x4())
def mid_slice_bound(x):
    return x[dis_id(1):] * 2


@program(1, "mid_expression", "disabled_list", inputs=x4())
def mid_closure_cell_after_break(x):
    k = dis_id(3)
    f = lambda z: z * k  # noqa: E731
    k = 4
    return f(x)


@program(3, "genexpr", "disabled_tensor", inputs=x4(),
         note="sum() of a generator: (mul) | dis | (0 + v) | dis | (+ v)")
def mid_generator_sum(x):
    return sum(dis_id(v) for v in [x, x * 2])


def _printing(v):
    print("v", v.shape[0])
    return v * 3


@program(3, "genexpr", "print", inputs=x4(),
         note="sum() of a generator whose items print: (add) | print | (mul, 0 + v) | print | (mul, +)")
def genexpr_print_sum(x):
    return sum(_printing(v) for v in [x, x + 1])


@program(3, "genexpr", "graph_break", inputs=x4(),
         note="a generator a Python loop consumes, graph_break() in its items: (mul) | gb | (sin, add) | gb | (sin, add)")
def genexpr_loop_graph_break(x):
    acc = x * 2
    for v in (_gb_item(w) for w in [x, acc]):
        acc = acc + v.sin()
    return acc


def _gb_item(w):
    bytegraph.graph_break()
    return w


@program(1, "mid_expression", "item+disabled", inputs=x4())
def mid_fstring(x):
    return f"{x.sum().item():.3f}-{dis_id(7)}-{tuple(x.shape)}"


@program(2, "cm_class", "disabled_tensor", inputs=x4acc())
def mid_user_cm_value(x, acc):
    with Suppress(acc) as cm:
        y = x * len(cm.acc)
        z = dis_id(y) + len(acc)
    return z, acc


@program(1, "finally", "disabled_tensor", inputs=x4acc())
def mid_return_in_nested_finally(x, acc):
    try:
        try:
            return dis_id(x) * 2
        finally:
            acc.append("inner")
    finally:
        acc.append("outer")


@program(1, "except_handler", "disabled_list", inputs=x4acc())
def mid_break_in_handler_then_reraise(x, acc):
    try:
        try:
            raise ValueError("v")
        except ValueError:
            acc.append(dis_id("h"))
            raise
    except ValueError as e:
        return x * 2, str(e), acc


@program(4, "for_list", "print", inputs=x4(),
         note="the loop runs 4 times: the body appends to the list it iterates (eager semantics)")
def loop_over_list_that_grows(x):
    lst = [1, 2]
    for v in lst:
        x = x + v
        print("v", v)
        if len(lst) < 4:
            lst.append(v + 10)
    return x, lst


@program(3, "for_list", "disabled_list", inputs=lambda: (t(4, rg=True), [1, 2]))
def loop_over_arg_list_grown_by_disabled(x, lst):
    # 4 iterations (the disabled function appends twice): (add) | (add) | (add, add)
    for v in lst:
        x = x + v
        if len(lst) < 4:
            dis_push(lst, v + 10)
    return x
