"""redteam4: graph breaks inside with-blocks, try/finally, loops mutating caller containers and
attributes, nested calls and generators; state that changes between calls (module attributes,
submodules, train/eval, requires_grad, hooks, globals, closure cells, defaults, a function's or a
method's __code__ replaced as IPython's autoreload does, attributes moving to the class or to a
property)."""
import pytest
import torch
import torch.nn as nn

import bytegraph
from redteam4_harness import X, check

P = {}


def probe(ncalls=3):
    def deco(f):
        P[f.__name__] = (f, ncalls)
        return f
    return deco


class CM:
    def __init__(self):
        self.log = []

    def __enter__(self):
        self.log.append("enter")
        return self

    def __exit__(self, *a):
        self.log.append(("exit", a[0].__name__ if a[0] else None))
        return False


@probe()
def with_block_breaks():
    cm = CM()

    def f(x):
        with cm as c:
            c.log.append("in")
            print("mid")
            x = x + 1
            y = x.sum().item()
            c.log.append(y)
        return x * y
    return f, lambda i: (X(i),), lambda: list(cm.log)


@probe()
def with_block_raise_after_break():
    cm = CM()

    def f(x):
        try:
            with cm:
                print("a")
                if x.sum() > 3:
                    raise ValueError("big")
                x = x + 1
        except ValueError as e:
            cm.log.append(str(e))
        return x
    return f, lambda i: (X(i),), lambda: list(cm.log)


@probe()
def try_finally_break():
    log = []

    def f(x):
        try:
            log.append(1)
            bytegraph.graph_break()
            if x.sum() > 3:
                return x - 1
            log.append(2)
        finally:
            log.append("fin")
            print("fin")
        return x + 1
    return f, lambda i: (X(i),), lambda: list(log)


class _O:
    pass


@probe()
def loop_mutating_caller_state_with_break():
    d, lst, s, o = {}, [], set(), _O()
    o.c = 0

    def f(x):
        for i in range(3):
            d[i] = i
            lst.append(i)
            s.add(i * 8 + 7)
            o.c += 1
            if i == 1:
                print("break", len(d))
            x = x + i
        return x
    return f, lambda i: (X(i),), lambda: (dict(d), list(lst), list(s), o.c)


@probe()
def nested_call_breaks():
    log = []

    def inner(x, k):
        log.append(k)
        print("inner", k)
        return x * k

    def f(x):
        y = inner(x, 2)
        log.append("mid")
        return inner(y, 3)
    return f, lambda i: (X(i),), lambda: list(log)


@probe()
def generator_with_breaks():
    def g(x):
        for i in range(3):
            print("g", i)
            yield x + i

    def f(x):
        return sum(g(x)), [t.sum().item() for t in g(x)]
    return f, lambda i: (X(i),), lambda: None


@probe()
def generator_send():
    def g():
        total = 0
        while True:
            v = yield total
            if v is None:
                return total
            total += v

    def f(x):
        it = g()
        next(it)
        it.send(2)
        r = it.send(3)
        try:
            it.send(None)
        except StopIteration as e:
            return x + r, e.value
    return f, lambda i: (X(i),), lambda: None


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(2, 2)
        self.scale = 1.0
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        return self.drop(self.l(x)) * self.scale


@probe(ncalls=8)
def module_state_changes():
    torch.manual_seed(0)
    m = M()

    def args(i):
        if i == 1:
            m.scale = 3.0
        if i == 2:
            m.l = nn.Linear(2, 2)
        if i == 3:
            m.eval()
        if i == 4:
            m.l.weight.requires_grad_(False)
        if i == 5:
            m.register_forward_hook(lambda mod, a, o: o + 100)
        if i == 6:
            m.l.register_forward_pre_hook(lambda mod, a: (a[0] * 0,))
        if i == 7:
            del m.drop
            m.drop = nn.Identity()
        return (torch.ones(2),)
    return m, args, lambda: None


G = 1.0


@probe(ncalls=4)
def global_changes_type():
    global G
    G = 1.0

    def f(x):
        return x * G

    def args(i):
        global G
        G = [1.0, 2.0, 2.0, 5][i]
        return (X(0),)
    return f, args, lambda: None


@probe(ncalls=4)
def closure_cell_changes():
    k = 1

    def f(x):
        return x * k

    def args(i):
        nonlocal k
        k = [1, 2, 2.5, torch.ones(2)][i]
        return (X(0),)
    return f, args, lambda: None


@probe()
def closure_written_across_break():
    n = 0

    def f(x):
        nonlocal n
        n += 1
        print(n)
        n += 1
        return x + n
    return f, lambda i: (X(i),), lambda: n


@probe()
def mutable_default_across_break():
    def f(x, acc=[]):      # noqa: B006 -- the point of the probe
        acc.append(len(acc))
        bytegraph.graph_break()
        return x + len(acc), list(acc)
    return f, lambda i: (X(i),), lambda: None


@probe(ncalls=4)
def defaults_then_code_replaced():
    def f(x, k=2):
        return x * k

    def args(i):
        if i == 1:
            f.__defaults__ = (5,)
        if i == 2:
            f.__code__ = (lambda x, k=2: x - k).__code__
        if i == 3:
            f.__code__ = (lambda x, k=2: x + k + 100).__code__
        return (X(0),)
    return f, args, lambda: None


def _helper(x, k=2):
    return x * k


@probe()
def callee_defaults_then_code_replaced():
    _helper.__defaults__ = (2,)
    _helper.__code__ = (lambda x, k=2: x * k).__code__

    def f(x):
        return _helper(x)

    def args(i):
        if i == 1:
            _helper.__defaults__ = (5,)
        if i == 2:
            _helper.__code__ = (lambda x, k=2: x - k).__code__
        return (X(0),)
    return f, args, lambda: None


@probe()
def method_code_replaced():
    class C:
        def m(self, x):
            return x * 2
    o = C()

    def f(x):
        return o.m(x)

    def args(i):
        if i == 1:
            C.m.__code__ = (lambda self, x: x - 1).__code__
        return (X(0),)
    return f, args, lambda: None


@probe()
def while_on_tensor_condition():
    def f(x):
        out = []
        i = 0
        while x.sum() < 20:
            x = x * 2
            out.append(i)
            i += 1
        return x, out
    return f, lambda i: (X(i),), lambda: None


@probe(ncalls=4)
def attribute_to_class_to_property():
    class O:
        pass
    o = O()
    o.k = 1

    def f(x):
        return x * o.k

    def args(i):
        if i == 1:
            o.k = 2
        if i == 2:
            del o.k
            O.k = 7
        if i == 3:
            O.k = property(lambda s: 11)
        return (X(0),)
    return f, args, lambda: None


@probe()
def method_swapped_on_class_then_instance():
    class O:
        def m(self):
            return 1
    o = O()

    def f(x):
        return x * o.m()

    def args(i):
        if i == 1:
            O.m = lambda self: 2
        if i == 2:
            o.m = lambda: 3
        return (X(0),)
    return f, args, lambda: None


@probe()
def loop_try_continue_finally_with_break():
    log = []

    def f(x):
        for i in range(3):
            try:
                if i == 1:
                    raise KeyError(i)
                print("try", i)
                log.append(("ok", i))
            except KeyError as e:
                log.append(("exc", str(e)))
                continue
            finally:
                log.append(("fin", i))
            x = x + i
        return x
    return f, lambda i: (X(i),), lambda: list(log)


@probe()
def contextmanager_pair_with_break():
    import contextlib
    log = []

    @contextlib.contextmanager
    def cm(tag):
        log.append(("in", tag))
        try:
            yield tag
        finally:
            log.append(("out", tag))

    def f(x):
        with cm("a") as a, cm("b") as b:
            print(a, b)
            x = x * 2
        return x
    return f, lambda i: (X(i),), lambda: list(log)


@probe(ncalls=6)
def module_submodule_bias_parameter_changes():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = nn.Linear(2, 2)
            self.use_b = True

        def forward(self, x):
            x = self.a(x)
            if self.use_b:
                x = self.b(x)
            return x
    torch.manual_seed(0)
    m = Two()

    def args(i):
        if i == 1:
            m.use_b = False
        if i == 2:
            m.use_b = True
            m.b = nn.Sequential(nn.ReLU(), nn.Linear(2, 2))
        if i == 3:
            m.a.bias = None
        if i == 4:
            with torch.no_grad():
                m.a.weight.mul_(2)
        if i == 5:
            m.a.weight = nn.Parameter(torch.ones(2, 2))
        return (torch.ones(2),)
    return m, args, lambda: None


@probe(ncalls=4)
def buffer_updated_in_place_train_eval():
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(2, 2)
            self.register_buffer("count", torch.zeros(()))

        def forward(self, x):
            self.count += 1
            if self.training:
                return self.l(x) * self.count
            return self.l(x)
    torch.manual_seed(0)
    m = Counting()

    def args(i):
        if i == 2:
            m.eval()
        if i == 3:
            m.train()
        return (torch.ones(2),)
    return m, args, lambda: m.count.item()


@probe(ncalls=4)
def hooks_added_and_removed():
    calls, hs = [], []
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 2))

    def args(i):
        if i == 1:
            hs.append(m[0].register_forward_hook(lambda mod, a, o: calls.append("h") or o * 2))
        if i == 2:
            hs.pop().remove()
        if i == 3:
            hs.append(m.register_forward_pre_hook(lambda mod, a, kw: ((a[0] + 1,), kw), with_kwargs=True))
        return (torch.ones(2),)
    return m, args, lambda: list(calls)


@probe(ncalls=4)
def class_attribute_then_instance_attribute():
    class Cfg:
        scale = 2
    cfg = Cfg()

    def f(x):
        return x * cfg.scale

    def args(i):
        if i == 1:
            Cfg.scale = 3
        if i == 2:
            cfg.scale = 5
        if i == 3:
            del cfg.scale
        return (X(0),)
    return f, args, lambda: None


@probe()
def generator_suspended_across_break():
    def f(x, n):
        out = []

        def gen():
            for i in range(n):
                out.append(i)
                yield x * i
        g = gen()
        a = next(g)
        print("mid")
        b = next(g)
        return a + b, out
    return f, lambda i: (X(i), 3), lambda: None


@probe(ncalls=4)
def dict_counter_picks_branch():
    state = {"n": 0}

    def f(x):
        state["n"] += 1
        if state["n"] % 2:
            return x + 1
        return x - 1
    return f, lambda i: (X(i),), lambda: dict(state)


@probe()
def item_results_in_sets_and_dicts():
    def f(x):
        y = x.sum().item()
        return x, sorted({y, 1.0}), {y: "a"}, int(y) in {1, 2, 3}
    return f, lambda i: (X(i),), lambda: None


@pytest.mark.parametrize("name", list(P))
def test_probe(name):
    build, ncalls = P[name]
    check(build, ncalls=ncalls)


def test_code_replaced_recompiles_once():
    def f(x):
        return x + 1
    c = bytegraph.compile(f, backend="eager")
    assert torch.equal(c(torch.ones(2)), torch.full((2,), 2.0))
    f.__code__ = (lambda x: x * 10).__code__
    assert torch.equal(c(torch.ones(2)), torch.full((2,), 10.0))
    assert torch.equal(c(torch.ones(2)), torch.full((2,), 10.0))
