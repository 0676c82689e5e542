"""Every break kind at every position: programs generated from two small template tables.

KINDS are statement snippets that break (each makes exactly one split of the region it sits in:
where a kind has two breaking calls in a row, e.g. `.numpy()` then `print`, no tensor work lies
between them). POSITIONS are function bodies with tensor work before, between and after each
execution of the snippet, so a position that runs the snippet n times has n + 1 regions:
expected_graphs = n + 1 for every grid program (checked by the oracle test).

Every program has the signature f(x, acc, ws, m): x a float[4] requiring grad, acc a list the
program appends to (an argument: compared after the call), ws a list of two float[4] tensors,
m a float[4, 4]; it returns (x, acc). The source is exec'd under a pseudo-filename that is
registered in linecache, so tracebacks, inspect and bytegraph's file:line all show it.
"""
import contextlib
import linecache
import textwrap
import zlib

import torch

import bytegraph
from graph_break_programs import C_BREAKS, LOG, PROGRAM_FILES, Env, Program, disabled, register, t


# --------------------------------------------------------------------------------------------
# helpers the snippets call

def _scale(x, k):
    return x * k


def _record(acc, x):
    acc.append(round(float(x.detach().float().sum()), 3))


def _raise(x):
    raise ValueError(f"bad value of size {x.shape[0]}")


dis_scale = disabled(_scale)
dis_record = disabled(_record)
dis_raise = disabled(_raise)
C_BREAKS.add(zlib.adler32)
PROGRAM_FILES.add(__file__)


class Tracker:
    """A user context manager: records enter/exit (with the exception type) on a list."""

    def __init__(self, acc, tag):
        self.acc, self.tag = acc, tag

    def __enter__(self):
        self.acc.append(("enter", self.tag))
        return self

    def __exit__(self, typ, val, tb):
        self.acc.append(("exit", self.tag, typ.__name__ if typ else None))
        return False


@contextlib.contextmanager
def tracked(acc, tag):
    acc.append(("genter", tag))
    try:
        yield tag
    finally:
        acc.append(("gexit", tag))


NAMESPACE = dict(torch=torch, bytegraph=bytegraph, LOG=LOG, zlib=zlib, dis_scale=dis_scale,
                 dis_record=dis_record, dis_raise=dis_raise, Tracker=Tracker, tracked=tracked)


# --------------------------------------------------------------------------------------------
# kinds: (snippet, note)

KINDS = {
    "print": "acc.append('p')\nprint('p', len(acc))",
    "graph_break": "acc.append('g')\nbytegraph.graph_break()\nacc.append(len(acc))",
    "item_print": "print('item', round(x.sum().item(), 3))",
    "item_arith": "s = x.sum().item()\nacc.append(round(s, 3))\nx = x * (1.0 + abs(s) % 1.0)",
    "item_if": "if x.sum().item() > 0:\n    x = x + 1\nelse:\n    x = x - 1\nacc.append('i')",
    "tolist": "vals = x.tolist()\nacc.append(len(vals))\nx = x + vals[0] * 0.5",
    "numpy": "arr = x.detach().float().numpy()\nprint('np', arr)",
    "if_tensor": "if x.sum() > 0:\n    x = x * 2\nelse:\n    x = x * 3",
    "if_bare": "flag = x.mean() > 10\nif flag:\n    x = x * 0\nacc.append('bare')",
    "disabled_tensor": "acc.append('d')\nx = dis_scale(x, 1.5)",
    "disabled_list": "dis_record(acc, x)\nx = x - 0.5",
    "disabled_raise": ("try:\n    dis_raise(x)\nexcept ValueError as e:\n    acc.append(str(e))\n"
                       "    x = x + 0.25"),
    "logging": "LOG.info('before %d', len(acc))\nprint('between')\nLOG.info('after')",
    "c_function": "acc.append(zlib.adler32(b'abc'))",
}


# --------------------------------------------------------------------------------------------
# positions: (template with a `{B}` line, times the snippet runs)

POSITIONS = {
    "top": ("""
def f(x, acc, ws, m):
    x = x * 1.1 + 0.1
    {B}
    x = x.sin() + 1
    return x, acc
""", 1),
    "for_range": ("""
def f(x, acc, ws, m):
    x = x + 0.5
    for i in range(2):
        x = x * 1.1 + i
        {B}
        acc.append(i)
    x = x.cos()
    return x, acc
""", 2),
    "for_list": ("""
def f(x, acc, ws, m):
    x = x - 0.1
    for w in ws:
        x = x + w
        {B}
    x = x * 0.9
    return x, acc
""", 2),
    "for_enumerate": ("""
def f(x, acc, ws, m):
    x = x.tanh()
    for i, w in enumerate(ws):
        x = x * w + i
        {B}
        acc.append(('it', i))
    return x.exp(), acc
""", 2),
    "for_zip": ("""
def f(x, acc, ws, m):
    x = x.abs() + 0.1
    for w, k in zip(ws, [0.5, 2.0]):
        x = x + w * k
        {B}
    return x.sqrt(), acc
""", 2),
    "while_counter": ("""
def f(x, acc, ws, m):
    x = x * 0.5
    i = 0
    while i < 2:
        x = x + ws[i]
        {B}
        i += 1
    return x + 1, acc
""", 2),
    "no_grad": ("""
def f(x, acc, ws, m):
    x = x * 2
    with torch.no_grad():
        y = x * 1.1 + 0.1
        x = y
        {B}
        x = x + ws[0]
    acc.append(x.requires_grad)
    return x - 1, acc
""", 1),
    "enable_grad": ("""
def f(x, acc, ws, m):
    x = x + 1
    with torch.no_grad():
        z = x * 3
        with torch.enable_grad():
            x = x * ws[1]
            {B}
            x = x.sigmoid()
        acc.append(z.requires_grad)
    return x * 2, acc
""", 1),
    "autocast": ("""
def f(x, acc, ws, m):
    x = x + 0.25
    with torch.autocast("cpu"):
        x = torch.mm(x.view(1, 4), m).view(4)
        {B}
        x = torch.mm(x.float().view(1, 4), m).view(4)
    acc.append(str(x.dtype))
    return x.float() * 2, acc
""", 1),
    "cm_class": ("""
def f(x, acc, ws, m):
    x = x * 1.5
    with Tracker(acc, 'a') as tr:
        x = x + ws[0]
        {B}
        x = x * 0.5
        tr.tag = 'b'
    return x + 1, acc
""", 1),
    "cm_generator": ("""
def f(x, acc, ws, m):
    x = x.exp()
    with tracked(acc, 'g') as tag:
        x = x * 0.5
        {B}
        x = x + len(tag)
    return x, acc
""", 1),
    "try_body": ("""
def f(x, acc, ws, m):
    x = x + 2
    try:
        x = x * 0.7
        {B}
        x = x - 0.3
    except KeyError:
        acc.append('never')
        x = x * 0
    return x.relu(), acc
""", 1),
    "except_handler": ("""
def f(x, acc, ws, m):
    x = x * 3
    try:
        x = x - 1
        raise KeyError('k')
    except KeyError as e:
        acc.append(str(e))
        x = x * 0.5
        {B}
        x = x + 2
    return x, acc
""", 1),
    "finally": ("""
def f(x, acc, ws, m):
    x = x - 2
    try:
        x = x * 1.25
        acc.append('body')
    finally:
        x = x + 1
        {B}
        x = x * ws[0]
    return x, acc
""", 1),
    "helper_d1": ("""
def h1(x, acc):
    x = x * 1.5
    {B}
    return x - 0.25

def f(x, acc, ws, m):
    x = x + ws[0]
    x = h1(x, acc)
    return x * 2, acc
""", 1),
    "helper_d2": ("""
def h2(x, acc):
    x = x.cos()
    {B}
    return x + 1

def h1(x, acc):
    y = h2(x * 2, acc)
    return y * x

def f(x, acc, ws, m):
    x = x + 1
    return h1(x, acc) - 1, acc
""", 1),
    "helper_d3": ("""
def h3(x, acc):
    x = x * 0.5
    {B}
    return x.exp()

def h2(x, acc):
    return h3(x + 1, acc) * 2

def h1(x, acc):
    acc.append('h1')
    return h2(x.sin(), acc) + x

def f(x, acc, ws, m):
    return h1(x * 1.1, acc), acc
""", 1),
    "helper_in_loop": ("""
def h1(x, w, acc):
    x = x + w
    {B}
    return x * 0.9

def f(x, acc, ws, m):
    x = x * 2
    for w in ws:
        x = h1(x, w, acc)
        x = x + 0.1
    return x.tanh(), acc
""", 2),
}


def _inputs():
    return (t(4, seed=0, rg=True), [], [t(4, seed=1), t(4, seed=2, rg=True)],
            t(4, 4, seed=3, rg=True))


def _render(template, snippet):
    out = []
    for line in template.strip("\n").splitlines():
        if line.strip() == "{B}":
            indent = line[:len(line) - len(line.lstrip())]
            out.append(textwrap.indent(snippet, indent))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _build(name, source):
    filename = f"<graph_break_programs_grid:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    PROGRAM_FILES.add(filename)
    ns = dict(NAMESPACE)
    exec(compile(source, filename, "exec"), ns)
    return ns["f"]


def _make_program(pos, kind):
    template, times = POSITIONS[pos]
    name = f"grid_{pos}__{kind}"
    source = _render(template, KINDS[kind])
    fn = _build(name, source)

    def make():
        return Env(fn=fn, inputs=lambda: (_inputs(), {}))
    return Program(name, make, times + 1, pos, kind, source=source, tags=("grid",))


for _pos in POSITIONS:
    for _kind in KINDS:
        register(_make_program(_pos, _kind))
