"""Decode a code object into normalized instructions (CPython 3.11).

Each Inst has its opname, raw arg, resolved argval, its index, the index of its
jump target (if any), and the source line. CACHE entries are dropped, and jump
targets are given as instruction indices so the interpreter never does offset
arithmetic. Decoding is cached per code object (weakly: code objects die with
their functions).

Normalizations, so handlers need no version knowledge:
- LOAD_GLOBAL's "push NULL" low bit becomes `push_null`;
- BINARY_OP's numeric arg becomes the operator function (operator.add, iadd, ...)
  via BINARY_OPS, derived from dis._nb_ops rather than a hand-written table;
- COMPARE_OP's argval is the comparison operator function;
- KW_NAMES's argval is the tuple of keyword names (dis leaves it unresolved);
- EXTENDED_ARG prefixes are already folded into the next instruction's arg.
"""
import dis
import operator
import sys
import weakref

assert sys.version_info[:2] == (3, 11), "bytegraph's bytecode layer targets CPython 3.11"

_NB_FUNCS = {
    "+": operator.add, "&": operator.and_, "//": operator.floordiv, "<<": operator.lshift,
    "@": operator.matmul, "*": operator.mul, "%": operator.mod, "|": operator.or_,
    "**": operator.pow, ">>": operator.rshift, "-": operator.sub, "/": operator.truediv,
    "^": operator.xor,
    "+=": operator.iadd, "&=": operator.iand, "//=": operator.ifloordiv, "<<=": operator.ilshift,
    "@=": operator.imatmul, "*=": operator.imul, "%=": operator.imod, "|=": operator.ior,
    "**=": operator.ipow, ">>=": operator.irshift, "-=": operator.isub, "/=": operator.itruediv,
    "^=": operator.ixor,
}
# index -> operator function, derived from the interpreter's own table of symbols
BINARY_OPS = [_NB_FUNCS[sym] for _name, sym in dis._nb_ops]

COMPARE_OPS = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
               ">": operator.gt, ">=": operator.ge}

JUMP_OPS = frozenset(dis.opname[i] for i in set(dis.hasjrel) | set(dis.hasjabs))


class Inst:
    __slots__ = ("opname", "arg", "argval", "index", "offset", "target", "line", "push_null",
                 "positions")

    def __init__(self, opname, arg, argval, index, offset, line, positions):
        self.opname = opname
        self.arg = arg
        self.argval = argval
        self.index = index
        self.offset = offset
        self.line = line
        self.target = None
        self.push_null = False
        self.positions = positions

    def __repr__(self):
        return f"{self.index}:{self.opname}({self.argval!r})"


class Handler:
    """One exception-table entry: instructions [start, end) jump to `target` on an exception,
    with the value stack cut to `depth` (and the raising offset pushed first if `lasti`)."""
    __slots__ = ("start", "end", "target", "depth", "lasti")

    def __init__(self, start, end, target, depth, lasti):
        self.start, self.end, self.target, self.depth, self.lasti = start, end, target, depth, lasti


_cache = weakref.WeakKeyDictionary()
_handlers = weakref.WeakKeyDictionary()


def exception_handlers(code):
    """The code object's exception table, with targets as instruction indices."""
    hs = _handlers.get(code)
    if hs is None:
        insts = decode(code)
        by_offset = {i.offset: i.index for i in insts}
        hs = [Handler(e.start, e.end, by_offset[e.target], e.depth, e.lasti)
              for e in dis._parse_exception_table(code)]
        _handlers[code] = hs
    return hs


def find_handler(code, offset):
    for h in exception_handlers(code):
        if h.start <= offset < h.end:
            return h
    return None


def decode(code):
    insts = _cache.get(code)
    if insts is not None:
        return insts
    insts = []
    by_offset = {}
    line = code.co_firstlineno
    for ins in dis.get_instructions(code):
        if ins.starts_line is not None:
            line = ins.starts_line
        argval = ins.argval
        i = Inst(ins.opname, ins.arg, argval, len(insts), ins.offset, line, ins.positions)
        if ins.opname == "LOAD_GLOBAL":
            i.push_null = bool(ins.arg & 1)
        elif ins.opname == "BINARY_OP":
            i.argval = BINARY_OPS[ins.arg]
        elif ins.opname == "COMPARE_OP":
            i.argval = COMPARE_OPS[ins.argval]
        elif ins.opname == "KW_NAMES":       # dis leaves the co_consts index unresolved
            i.argval = code.co_consts[ins.arg]
        by_offset[ins.offset] = i.index
        insts.append(i)
    for i in insts:
        if i.opname in JUMP_OPS:
            i.target = by_offset[i.argval]
    _cache[code] = insts
    return insts
