"""Harness of the data-model red-team probes (tests/test_redteam_datamodel*.py).

A probe is a factory `build() -> Case`: it creates fresh classes, objects and a log list, and
the function under test (which takes at least one tensor). `run_probe` calls the factory once
for the eager run and once for the compiled run (`compile_fn(fn, backend="eager")`, i.e.
bytegraph, or torch.compile with BYTEGRAPH_TEST_REFERENCE=1), calls the function twice on each
side, and after every call compares three observations between the two sides:

- the result (or the exception's type and message),
- the dunder-call log (user dunders append to a list the probe owns),
- Python state afterwards: the arguments' contents/attributes and whatever `Case.state` returns.

Observations are turned into a canonical form (`canon`) without running any user code
(no `__eq__`, `__repr__`, `__getattribute__`, ...), so observing cannot itself add log entries.
A compiled run that falls back to eager matches by construction: refusing is allowed, guessing
is not. Bytegraph's own warnings (internal errors, self-detected wrong traces) are not failures;
they are recorded when DATAMODEL_REPORT=path is set (one JSON line per probe), as are results.

`python tests/datamodel_harness.py` prints the number of probes per protocol.
"""
import copy
import enum
import json
import operator
import os
import sys
import types
import warnings

import pytest
import torch

from differential import REFERENCE, compile_fn, counters, reset
from redteam_harness import cmp

# --------------------------------------------------------------------------- registry

PROTOCOLS = ("binary", "inplace", "unary", "compare", "truth", "membership", "hashing",
             "attribute")
ALL = {}   # probe name -> (protocol, build), over every probe module
OPS = [("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "truediv"), ("//", "floordiv"),
       ("%", "mod"), ("**", "pow"), ("@", "matmul"), ("&", "and"), ("|", "or"), ("^", "xor"),
       ("<<", "lshift"), (">>", "rshift")]   # binary operators: (symbol, dunder stem)


class Probes(dict):
    """Per-module registry: `@P("binary") def name(): return Case(...)`; `P.add(name, proto, build)`
    for generated probes. Names are unique across all probe modules (they are test ids)."""

    def __call__(self, protocol):
        def deco(build):
            self.add(build.__name__, protocol, build)
            return build
        return deco

    def add(self, name, protocol, build):
        assert protocol in PROTOCOLS, protocol
        assert name not in ALL, f"duplicate probe name {name}"
        self[name] = (protocol, build)
        ALL[name] = (protocol, build)

    def params(self):
        return [pytest.param(name, id=name) for name in self]


class Case:
    """fn(*args) is the program; log: the list user dunders append to; state(): extra Python
    state to compare (class attributes, globals, ...); args2: arguments of the second call
    (default: the same objects again, with whatever state the first call left); between(): run
    before the second call (e.g. monkeypatch a class, so a cache hit must be refused)."""

    def __init__(self, fn, args, log=None, state=None, args2=None, between=None):
        self.fn, self.args, self.log, self.state, self.args2 = fn, tuple(args), log, state, args2
        self.between = between


# --------------------------------------------------------------------------- canonical form

_IMMUTABLE = (int, float, bool, str, bytes, complex, type(None), type(NotImplemented),
              type(Ellipsis), range, slice)
_BUILTIN_BASES = (bool, int, float, complex, str, bytes, tuple, list, dict, set, frozenset)


def _qual(t):
    return f"{t.__module__}.{t.__qualname__}"


def _base(t):
    for b in t.__mro__:
        if b in _BUILTIN_BASES:
            return b
    return None


def _attrs(v, seen, args):
    """Instance __dict__ and slots, read without running user __getattribute__."""
    out = {}
    try:
        d = object.__getattribute__(v, "__dict__")
    except (AttributeError, TypeError):
        d = None
    if isinstance(d, dict):
        out.update({k: canon(x, seen, args) for k, x in dict.items(d)})
    for klass in type(v).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for s in ([slots] if isinstance(slots, str) else slots):
            if s in ("__dict__", "__weakref__"):
                continue
            try:
                out["slot:" + s] = canon(object.__getattribute__(v, s), seen, args)
            except AttributeError:
                out["slot:" + s] = "<unset>"
    return out


def canon(v, seen=None, args=()):
    """A comparable picture of v made of str/tuple/list/dict and tensor clones. A mutable object met
    a second time is shown as ("<alias>", n) (its first position); objects that are not immutable
    builtins are also tagged with the index of the argument they are (identity)."""
    seen = {"mutable": {}, "open": set()} if seen is None else seen
    t = type(v)
    if t in _IMMUTABLE:
        return (t.__name__, repr(v))
    if id(v) in seen["mutable"]:
        return ("<alias>", seen["mutable"][id(v)])
    if id(v) in seen["open"]:
        return ("<cycle>",)
    if t not in (tuple, frozenset):
        seen["mutable"][id(v)] = len(seen["mutable"])
    seen["open"].add(id(v))
    try:
        return _canon(v, t, seen, args)
    finally:
        seen["open"].discard(id(v))


def _canon(v, t, seen, args):
    ident = [i for i, a in enumerate(args) if a is v]
    tag = ("@arg", ident[0]) if ident else ()
    if issubclass(t, torch.Tensor):
        return ("tensor", _qual(t), v.dtype, tuple(v.shape), v.requires_grad, v.detach().clone()) + tag
    if issubclass(t, type):
        return ("class", _qual(v)) + tag
    if issubclass(t, enum.Enum):
        return ("enum", _qual(t), object.__getattribute__(v, "_name_")) + tag
    if issubclass(t, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return ("callable", getattr(v, "__qualname__", repr(t))) + tag
    base = _base(t)
    if base in (bool, int, float, complex, str, bytes):
        body = base.__repr__(v)
    elif base in (tuple, list):
        body = [canon(x, seen, args) for x in base.__iter__(v)]
    elif base is dict:
        body = [(canon(k, seen, args), canon(x, seen, args)) for k, x in dict.items(v)]
    elif base in (set, frozenset):
        body = sorted((canon(x, seen, args) for x in base.__iter__(v)), key=repr)
    else:
        body = None
    attrs = _attrs(v, seen, args) if (base is None or t is not base) else {}
    if body is None and not attrs and not any("__slots__" in k.__dict__ for k in t.__mro__):
        try:
            object.__getattribute__(v, "__dict__")
        except AttributeError:
            return ("opaque", _qual(t), object.__repr__(v).split(" at 0x")[0]) + tag
    return (_qual(t), body, attrs) + tag


# --------------------------------------------------------------------------- running

def _bytegraph_warning(msg):
    return msg.startswith("bytegraph") or "bytegraph's trace" in msg


def _observe(case, fn, call_args):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            r = ("ok", canon(fn(*call_args), args=call_args))
        except Exception as e:  # the probe's own exception is an observation
            r = ("exc", _qual(type(e)), str(e))
    msgs = [str(m.message) for m in w]
    user = [m for m in msgs if not _bytegraph_warning(m)]
    obs = {"result": r, "args": canon(call_args), "log": canon(case.log),
           "state": canon(case.state() if case.state else None), "warnings": user}
    return obs, [m for m in msgs if _bytegraph_warning(m)]


def _compile_stats():
    c = counters()
    return {"graphs": c["stats"]["unique_graphs"], "graph_breaks": sum(c["graph_break"].values()),
            "frames_ok": c["frames"]["ok"], "internal_errors": c["frames"]["internal_error"]}


def _report(name, status, stats, detail=""):
    path = os.environ.get("DATAMODEL_REPORT")
    if not path:
        return
    proto = ALL[name][0]
    line = json.dumps({"probe": name, "protocol": proto, "status": status, "reference": REFERENCE,
                       "detail": detail[:6000], **stats}, default=str)
    with open(path, "a") as fh:
        fh.write(line + "\n")


def run_probe(name, ncalls=2):
    protocol, build = ALL[name]
    runs, bg_warnings = {}, []
    for mode in ("eager", "compiled"):
        reset()
        torch.manual_seed(0)
        case = build()
        fn = case.fn if mode == "eager" else compile_fn(case.fn, backend="eager")
        calls = []
        for i in range(ncalls):
            if i == 1 and case.between is not None:
                case.between()
            call_args = case.args if i == 0 or case.args2 is None else tuple(case.args2)
            obs, bw = _observe(case, fn, call_args)
            calls.append(obs)
            if mode == "compiled":
                bg_warnings += bw
        runs[mode] = calls
    stats = _compile_stats()
    stats["bytegraph_warnings"] = bg_warnings
    try:
        for i, (e, c) in enumerate(zip(runs["eager"], runs["compiled"])):
            for key in ("result", "log", "args", "state", "warnings"):
                cmp(e[key], c[key], f"call{i}.{key}")
    except AssertionError as err:
        msg = (f"{name}: {err}\n  eager:\n    {_short(runs['eager'])}\n"
               f"  compiled:\n    {_short(runs['compiled'])}")
        _report(name, "FAIL", stats, msg)
        raise AssertionError(msg) from None
    _report(name, "ok", stats)


def _show(c):
    """Readable rendering of a canonical form (for failure messages only)."""
    if isinstance(c, torch.Tensor):
        return f"tensor{c.tolist()}"
    if not isinstance(c, tuple):
        return repr(c)
    if len(c) == 2 and c[0] in {t.__name__ for t in _IMMUTABLE} and isinstance(c[1], str):
        return c[1]
    if c and c[0] == "tensor":
        return f"tensor({c[3]}){c[5].tolist()}" + (f"@arg{c[7]}" if len(c) > 6 else "")
    if c and c[0] in ("class", "enum", "callable", "opaque", "<cycle>", "<alias>"):
        return "<" + " ".join(str(p) for p in c) + ">"
    if not (len(c) >= 3 and isinstance(c[0], str) and isinstance(c[2], dict)):
        return "(" + ", ".join(_show(x) for x in c) + ")"
    qual, body, attrs, *tag = c
    name = qual.rsplit(".", 1)[-1]
    if isinstance(body, list):
        pairs = body and all(isinstance(k, tuple) and len(k) == 2 and isinstance(k[0], tuple) for k in body)
        inner = ", ".join(f"{_show(k[0])}: {_show(k[1])}" if pairs else _show(k) for k in body)
        text = f"{name}[{inner}]"
    else:
        text = f"{name}({body if body is not None else ''})"
    if attrs:
        text += "{" + ", ".join(f"{k}={_show(v)}" for k, v in attrs.items()) + "}"
    return text + (f"@arg{tag[1]}" if tag else "")


def _short(calls):
    return "\n    ".join(f"call{i}: " + "; ".join(f"{k}={_show(v) if k != 'warnings' else v}"
                                              for k, v in c.items() if v not in (None, [], ("NoneType", "None")))
                         for i, c in enumerate(calls))


def fn_from(src, name="f", env=None):
    """A function defined from source text (for table-generated probes: the operator must be the
    real opcode, not operator.add). env: its globals (classes it refers to)."""
    ns = dict(env or {})
    ns.setdefault("torch", torch)
    ns.setdefault("operator", operator)
    exec(compile(src, f"<datamodel probe {name}>", "exec"), ns)
    return ns[name]


# --------------------------------------------------------------------------- shared helpers

def table_probe(src, *values):
    """The build of a table-driven probe: fn_from(src) called on (tensor, *values), with the
    values deep-copied for every build so the eager and compiled runs never share a container."""
    return lambda: Case(fn_from(src), (torch.ones(2),) + copy.deepcopy(values))


def caught(fn, *types):
    """For probe bodies: fn(), or (exception type name, message) if it raises one of `types`."""
    try:
        return fn()
    except types or (Exception,) as e:
        return (type(e).__name__, str(e))


def dunder(log, owner, name, behaviour="tag", unary=False):
    """A dunder that appends (owner, name[, type name of its argument]) to log, then:
    "tag" returns "owner.name"; "ni" returns NotImplemented; "raise" raises ValueError("owner.name");
    "self" bumps self.n and returns self (an in-place op); any callable: behaviour(self, other)."""
    label = f"{owner}.{name}"
    if unary:
        def m(self):
            log.append((owner, name))
            if behaviour == "raise":
                raise ValueError(label)
            return label if behaviour == "tag" else behaviour(self, None)
        return m

    def m(self, other):
        log.append((owner, name, type(other).__name__))
        if behaviour == "tag":
            return label
        if behaviour == "ni":
            return NotImplemented
        if behaviour == "raise":
            raise ValueError(label)
        if behaviour == "self":
            self.n = self.n + 1
            return self
        return behaviour(self, other)
    return m


def klass(log, name, dunders=None, bases=(object,), unary=(), **ns):
    """A class `name` whose dunders (name -> behaviour) log to `log`; `unary` lists the dunders
    that take no argument; other keyword arguments go into the class namespace."""
    body = {"n": 0, **ns}
    for d, behaviour in (dunders or {}).items():
        body[d] = dunder(log, name, d, behaviour, unary=d in unary)
    return type(name, bases, body)


def enums():
    """Fresh enum classes of every kind, as a namespace."""
    class Color(enum.Enum):
        RED = 1
        GREEN = 2
        ZERO = 0

        def describe(self):
            return self.name.lower() + str(self.value)

        @property
        def twice(self):
            return self.value * 2

    class N(enum.IntEnum):
        ZERO = 0
        ONE = 1
        TWO = 2

    class S(enum.StrEnum):
        A = "a"
        B = "b"
        EMPTY = ""

    class Fl(enum.Flag):
        R = enum.auto()
        W = enum.auto()
        X = enum.auto()

    class IF(enum.IntFlag):
        R = 1
        W = 2
        X = 4

    class Action(str, enum.Enum):
        A = "a"
        B = "b"

    class IM(int, enum.Enum):
        ONE = 1
        TWO = 2

    class Auto(enum.Enum):
        FIRST = enum.auto()
        SECOND = enum.auto()
        ALIAS = 1

    return types.SimpleNamespace(Color=Color, N=N, S=S, Fl=Fl, IF=IF, Action=Action, IM=IM, Auto=Auto)


def _count():
    import glob
    import importlib
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    for path in sorted(glob.glob(os.path.join(here, "test_redteam_datamodel*.py"))):
        importlib.import_module(os.path.basename(path)[:-3])
    registry = importlib.import_module("datamodel_harness").ALL   # not __main__'s copy
    per = {}
    for proto, _ in registry.values():
        per[proto] = per.get(proto, 0) + 1
    for proto in PROTOCOLS:
        print(f"{proto:12s} {per.get(proto, 0)}")
    print(f"{'total':12s} {len(registry)}")


if __name__ == "__main__":
    _count()
