"""A `__setattr__` written in Python on a caller's object is traced, not a graph break (issue 7).

transformers' configs (`self.config.problem_type = ...` in a train-mode forward) define
`__setattr__` in Python (alias mapping, strict-dataclass validators, then
`super().__setattr__`). The trace inlines it; its final store (`object.__setattr__` /
`super().__setattr__`) is a logged side effect replayed in program order with
`object.__setattr__`, so the user's method runs once, as in eager. Differential: outputs,
stdout, the objects' attributes and the log the `__setattr__` keeps; no graph break, no
fallback; the second call is a pure cache hit."""
import contextlib
import io

import pytest
import torch

import bytegraph

from test_graph_breaks import Counting, assert_same

LOG = []


class Cfg:
    aliases = {"nl": "num_labels"}

    def __init__(self):
        self.problem_type = None
        self.num_labels = 2

    def __setattr__(self, key, value):
        LOG.append(("set", key))
        if key in type(self).aliases:
            key = type(self).aliases[key]
        if key == "num_labels" and not isinstance(value, int):
            raise TypeError("num_labels must be an int")
        super().__setattr__(key, value)


class PrintingCfg(Cfg):
    def __setattr__(self, key, value):
        print("setting", key)
        object.__setattr__(self, key, value)


class Frozen:
    def __init__(self):
        object.__setattr__(self, "scale", 3.0)

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is frozen ({key})")


class Logged(Cfg):
    def __delattr__(self, key):
        LOG.append(("del", key))
        object.__delattr__(self, key)


def write_read_dict_delete(x, cfg):
    cfg.problem_type = "multi"
    cfg.tmp = x.sum()
    keys = sorted(vars(cfg))                     # __dict__ read after the writes
    del cfg.tmp
    return x * cfg.num_labels, keys, sorted(cfg.__dict__)


def set_problem_type(x, cfg):
    y = x * 2
    if cfg.problem_type is None:
        cfg.problem_type = "regression"
    cfg.nl = 3                                   # an alias the __setattr__ maps
    return y + cfg.num_labels, cfg.problem_type


def write_then_break(x, cfg):
    y = x.sin()
    cfg.problem_type = "single"
    print("mid", cfg.problem_type)
    cfg.extra = y.sum().item()                   # a break after the write: replayed before it
    return y * 2


def validation_raises(x, cfg):
    try:
        cfg.num_labels = "bad"
    except TypeError as e:
        return x + 1, str(e), cfg.num_labels
    return x, None, None


def frozen_write(x, obj):
    try:
        obj.scale = 1.0
    except AttributeError as e:
        return x * obj.scale, str(e)
    return x, None


def _state(obj):
    return sorted(vars(obj).items())


def run(fn, make_obj, breaks=0):
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(fn, backend=be)
    graphs = []
    for _ in range(2):
        results = []
        for f in (fn, c):
            obj = make_obj()
            LOG.clear()
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                r = f(torch.ones(3), obj)
            results.append((r, _state(obj), list(LOG), out.getvalue()))
        (re_, se, le, oe), (rc, sc, lc, oc) = results
        assert_same(re_, rc)
        assert se == sc and le == lc and oe == oc, (results[0][1:], results[1][1:])
        graphs.append(len(be.graphs))
    assert graphs[0] >= 1 and graphs[1] == graphs[0], f"the second call compiled again: {graphs}"
    assert bytegraph.counters["recompiles"]["total"] == 0
    assert not bytegraph.counters["fallback"], dict(bytegraph.counters["fallback"])
    assert sum(bytegraph.counters["graph_break"].values()) == breaks, dict(bytegraph.counters["graph_break"])
    return graphs[0]


@pytest.mark.parametrize("fn,make,breaks", [
    (set_problem_type, Cfg, 0),
    (set_problem_type, PrintingCfg, 2),         # the print inside __setattr__: break and continue
    (write_then_break, Cfg, 2),                 # print + item()
    (validation_raises, Cfg, 0),
    (frozen_write, Frozen, 0),
    (write_read_dict_delete, Logged, 0),
], ids=["alias_and_super", "printing_setattr", "write_before_break", "validator_raises", "frozen",
        "dict_read_and_delattr"])
def test_python_setattr_is_traced(fn, make, breaks):
    run(fn, make, breaks)


def test_transformers_config_problem_type():
    transformers = pytest.importorskip("transformers")
    make = lambda: transformers.BertConfig(hidden_size=8, num_attention_heads=2, num_hidden_layers=1,
                                           intermediate_size=8)

    def f(x, cfg):
        if cfg.problem_type is None:
            if cfg.num_labels == 1:
                cfg.problem_type = "regression"
            else:
                cfg.problem_type = "single_label_classification"
        return x * cfg.hidden_size, cfg.problem_type

    def state(cfg):
        return cfg.problem_type, cfg.to_dict()

    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(f, backend=be)
    for _ in range(2):
        ce, cc = make(), make()
        assert_same(f(torch.ones(2), ce), c(torch.ones(2), cc))
        assert state(ce) == state(cc)
    assert len(be.graphs) == 1
    assert not bytegraph.counters["graph_break"] and not bytegraph.counters["fallback"]
    assert bytegraph.counters["recompiles"]["total"] == 0
