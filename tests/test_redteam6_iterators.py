"""redteam6: iteration state across graph breaks and inside the trace. A dict/set iterator
handed to a resume function (a stop inside `for k in d:`) was a tuple of the keys left: a size
change after the break no longer raised RuntimeError (it is now a checked iterator the next
trace wraps back, values/iterators.py: HashIterLeft); `d.items()` / `d.values()` steps read
values fixed when the iterator was made (a value the loop replaced came out stale); a strict
zip over arguments of different lengths raised before its first row with a made-up message.
Also the layer-call split (runtime/resume.py) with `layer.forward = f` set on one instance.
Each probe compares every call with eager (redteam4_harness.check: result or exception, the
arguments after the call, stdout)."""
import pytest
import torch
from torch import nn

import bytegraph
from redteam4_harness import X, check

P = {}


def reg(f):
    P[f.__name__] = f
    return f


def _loop_probe(body, arg):
    def build():
        return body, lambda i: (X(i), arg()), lambda: None
    return build


def dict_grow_after_break(x, d):
    out = []
    try:
        for k in d:
            if x.sum() > d[k]:          # stops the trace inside the loop
                x = x - 1
            if k == "b":
                d["z"] = 0
            out.append(k)
    except RuntimeError as e:
        out.append(str(e))
    return x, out


def dict_grow_uncaught(x, d):
    out = []
    for k in d:
        if x.sum() > d[k]:
            x = x - 1
        if k == "b":
            d["z"] = 0
        out.append(k)
    return x, out


def set_grow_after_break(x, s):
    out = []
    try:
        for k in s:
            if x.sum() > k:
                x = x - 1
            s.add(k + 100)
            out.append(k)
    except RuntimeError as e:
        out.append(str(e))
    return x, out


def dict_items_after_break(x, d):
    out = []
    for k, v in d.items():
        if x.sum() > v:
            x = x - 1
        d["c"] = 100                    # a later step sees the new value
        out.append((k, v))
    return x, out


def dict_values_no_break(x, d):
    out = []
    for v in d.values():
        x = x + v
        d["c"] = 100
        out.append(v)
    return x, out


def dict_items_no_break(x, d):
    out = []
    for k, v in d.items():
        x = x + v
        d["c"] = 100
        out.append((k, v))
    return x, out


def dict_loop_long_after_break(x, d):
    for k, v in d.items():
        if x.sum() > v:
            x = x - 1
        x = x * 2
    return x


def trace_made_dict_values_after_break(x, d):
    mine = dict(d)
    out = []
    for v in mine.values():
        if x.sum() > v:
            x = x - 1
        out.append(v)
    return x, out


def _abc():
    return {"a": 1, "b": 2, "c": 3}


def _long():
    return {str(i): i for i in range(8)}


for fn, arg in [(dict_grow_after_break, _abc), (dict_grow_uncaught, _abc),
                (set_grow_after_break, lambda: {1, 2, 3}), (dict_items_after_break, _abc),
                (dict_values_no_break, _abc), (dict_items_no_break, _abc),
                (dict_loop_long_after_break, _long), (trace_made_dict_values_after_break, _long)]:
    P[fn.__name__] = _loop_probe(fn, arg)


def _zip_strict(lengths):
    def f(x):
        out = []
        args = [list(range(n)) for n in lengths]
        try:
            for t in zip(*args, strict=True):
                x = x + 1
                out.append(t)
        except ValueError as e:
            out.append(str(e))
        try:
            out.append(list(zip(*[iter(a) for a in args], strict=True)))
        except ValueError as e:
            out.append(str(e))
        return x, out

    def build():
        return f, lambda i: (X(i),), lambda: None
    return build


for lengths in [(3, 2), (2, 3), (2, 2, 3), (2, 2, 1), (3, 3, 2), (1, 3, 3), (2, 2, 2), (0, 1)]:
    P["zip_strict_" + "_".join(map(str, lengths))] = _zip_strict(lengths)


@pytest.mark.parametrize("name", sorted(P))
def test_iteration(name):
    check(P[name], ncalls=2)


FULLGRAPH = [n for n in P if n.startswith("zip_strict") or n.endswith("no_break")]


@pytest.mark.parametrize("name", sorted(FULLGRAPH))
def test_iteration_fullgraph(name):
    check(P[name], ncalls=2, fullgraph=True)


def test_dict_loop_with_break_still_compiles():
    bytegraph.reset()
    c = bytegraph.compile(dict_loop_long_after_break, backend="eager")
    d = _long()
    for i in range(3):
        assert torch.equal(c(X(i), d), dict_loop_long_after_break(X(i), d))
    assert bytegraph.counters["frames"]["ok"] == bytegraph.counters["frames"]["total"]


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        x = self.lin(x)
        if x.abs().max() > 1:           # each layer stops: the layer call is split out
            x = x * 0.5
        return torch.relu(x) + 1


class Net(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.layers = nn.ModuleList(Gate() for _ in range(n))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x.sum()


@pytest.mark.parametrize("how", ["forward", "compiled_call_impl"])
def test_layer_with_instance_forward(how):
    """The trampoline called the class's forward of a layer whose instance has its own."""
    outs = []
    for compiled in (False, True):
        bytegraph.reset()
        torch.manual_seed(0)
        m = Net(8)
        f = bytegraph.compile(m, backend="eager") if compiled else m
        x = torch.randn(2, 8)
        r = [f(x).item()]
        if how == "forward":
            m.layers[3].forward = lambda x: x * 100
        else:
            m.layers[3]._compiled_call_impl = lambda x: x * 100
        r += [f(x).item() for _ in range(2)]
        outs.append(r)
    assert outs[0] == pytest.approx(outs[1], rel=1e-5)
