"""Build the code object of a resume function (CPython 3.11).

A graph break that stops the trace at instruction I of a function leaves the rest of
the function to run after Python code ran I. The resume function is the *original*
code with a short prologue in front:

    COPY_FREE_VARS n          (if it has free variables)
    RESUME 0
    LOAD_FAST __stack0 ...    (or PUSH_NULL): rebuild the value stack, bottom first
    DELETE_FAST __stack0 ...  (the stack slots must not keep objects alive)
    DELETE_FAST x ...         (locals that were unbound at the break stay unbound)
    EXTENDED_ARG / JUMP_FORWARD -> the instruction after I

Every original instruction stays where it was relative to the others: 3.11 jumps are
all relative, so they need no rewriting; the exception table and the line table are
shifted by the prologue's length (the prologue has no line). Parameters: every local
slot of the original in its order (locals, cell variables, free variables), followed by
the stack slots, all positional, so the body's local indices stay valid (EXTENDED_ARG
included). For a cell or free variable the caller passes the cell object itself, which
lands in its slot (MAKE_CELL / COPY_FREE_VARS are skipped), so closures made before the
break keep sharing it; only `__class__` stays a free variable (see resume_code).

Why not the `bytecode` package: it reassembles the whole function (labels, stack depth,
tables) from scratch, about 1.4 ms for a 12-line function; this copies the original
bytes and writes ~20 bytes of prologue (measured in BENCHMARKS.md), and it cannot
change anything it does not touch.
"""
import dis
import inspect
import re

from ..exc import Unsupported

_OP = dis.opmap
_LOCAL_OPS = {_OP[n] for n in ("LOAD_FAST", "STORE_FAST", "DELETE_FAST", "LOAD_DEREF", "STORE_DEREF",
                               "DELETE_DEREF", "LOAD_CLOSURE", "LOAD_CLASSDEREF")}
_PREFIX_OPS = {_OP["MAKE_CELL"], _OP["COPY_FREE_VARS"]}
_EXTENDED_ARG = _OP["EXTENDED_ARG"]
_CACHES = {name: dis._inline_cache_entries[_OP[name]] for name in ("PRECALL", "CALL")}
NULL = object()     # a stack slot holding CPython's NULL (pushed by PUSH_NULL)
EXC = object()      # a slot where PUSH_EXC_INFO saved the exception state of an except block
WITH = object()     # a with-block's __exit__: the parameter is the context manager, entered again


def _varint(value, out, first):
    chunks = [value & 63]
    value >>= 6
    while value:
        chunks.append(value & 63)
        value >>= 6
    chunks.reverse()
    for i, c in enumerate(chunks):
        b = c | (64 if i < len(chunks) - 1 else 0)
        if first and i == 0:
            b |= 128
        out.append(b)


def _exception_table(code, shift, extra=()):
    """The original's table shifted by `shift` bytes, after `extra` entries (start, end,
    target, depth, lasti) in code units of the new code (the prologue's)."""
    entries = list(extra) + [((e.start + shift) // 2, (e.end + shift) // 2, (e.target + shift) // 2,
                              e.depth, e.lasti) for e in dis._parse_exception_table(code)]
    out = bytearray()
    for start, end, target, depth, lasti in entries:
        _varint(start, out, True)
        _varint(end - start, out, False)
        _varint(target, out, False)
        _varint(depth << 1 | int(lasti), out, False)
    return bytes(out)


def _extend(pro):
    out = []
    for op, arg in pro:
        if arg > 0xFFFFFF:
            raise Unsupported("a graph break in a function too large to resume", kind="graph_break_resume")
        if arg > 0xFFFF:
            out.append((_EXTENDED_ARG, arg >> 16))
        if arg > 0xFF:
            out.append((_EXTENDED_ARG, (arg >> 8) & 0xFF))
        out.append((op, arg & 0xFF))
    return out


def _no_location(units):
    out = bytearray()
    while units > 0:
        n = min(units, 8)
        out.append(0x80 | (15 << 3) | (n - 1))
        units -= n
    return bytes(out)


_SLOT_NAME = re.compile(r"__(stack|inner)\d+_\d+$")


def kept_varnames(code):
    """The varnames of `code` a resume function of it keeps: all but the stack and inner-call
    parameters of a resume function (`code` itself being one), which come last and which only
    its prologue reads (they are deleted there): a chain of resume functions of resume
    functions would otherwise pass every earlier level's slots on, growing at each level."""
    names = code.co_varnames
    n = len(names)
    while n and _SLOT_NAME.match(names[n - 1]):
        n -= 1
    return names[:n]


def local_params(code):
    """The resume function's parameters before its stack slots, in the original's slot
    order: the kept locals, then the cell variables, then the free variables."""
    return list(kept_varnames(code)) + [c for c in code.co_cellvars if c not in code.co_varnames] + \
        list(code.co_freevars)


def resume_code(code, target_offset, stack, dead, name, inner=None, generator=False):
    """The resume function's code object. `target_offset`: byte offset (in `code`) of the
    first instruction to run; `stack`: per stack slot bottom first, NULL or None (a value);
    EXC (an except block's saved exception state: pass the handled exception); WITH (a
    with-block's __exit__: pass the context manager, which the prologue enters);
    `dead`: names of locals unbound at the break; `inner`: (function, n, call offset) -- the
    resume function of the frame this one was calling, called first with the last n
    parameters, its result pushed as the call's result; when the original call (at `call
    offset`) sits in a try/with block, an exception from that call goes to the block's
    handler as it would from the original call. Returns (code, parameter names, the byte
    offset of the original code in the new one).

    `generator`: `code` is a generator's and the result is one too, whose prologue starts with
    RETURN_GENERATOR (calling it makes the generator; its first next() rebuilds the stack and
    jumps): see suspended_generator in runtime/resume.py, which jumps to the YIELD_VALUE a
    traced generator was paused at, so one next() leaves the new generator suspended there."""
    if code.co_flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR) or \
            (code.co_flags & inspect.CO_GENERATOR and not generator):
        raise Unsupported("a graph break in a generator or coroutine", kind="graph_break_generator")
    generator = bool(code.co_flags & inspect.CO_GENERATOR)
    # Parameters, in the original's local-slot order so no instruction of the body needs a
    # new index: every local, cell variables included (the caller passes the cell object
    # itself: MAKE_CELL is skipped, so the slot holds the very cell closures made before the
    # break share), then the free variables, passed as cells too (COPY_FREE_VARS is
    # skipped), then the stack slots. `__class__` stays a real free variable (zero-argument
    # super() looks for it among the free variables): its slot becomes an unused parameter
    # and the instructions that read it are renumbered. Names that are not identifiers
    # (pytest's assertion rewriting makes `@py_assert0`) get one.
    kept = kept_varnames(code)
    varnames = [v if v.isidentifier() else f"__local{i}" for i, v in enumerate(kept)]
    dropped = range(len(kept), len(code.co_varnames))      # an earlier prologue's slots
    cells = [c for c in code.co_cellvars if c not in code.co_varnames]
    frees = list(code.co_freevars)
    level = 0
    while any(v.startswith((f"__stack{level}_", f"__inner{level}_", f"__free{level}_")) for v in kept):
        level += 1          # a resume function of a resume function: fresh slot names
    freevars = [v for v in frees if v == "__class__"]
    free_params = [f"__free{level}_class" if v == "__class__" else v for v in frees]
    slots = [f"__stack{level}_{i}" for i, s in enumerate(stack) if s is not NULL]
    inner_fn, n_inner, call_offset = inner if inner is not None else (None, 0, None)
    inner_params = [f"__inner{level}_{i}" for i in range(n_inner)]
    params = varnames + cells + free_params + slots + inner_params
    index = {n: i for i, n in enumerate(params + freevars)}
    for i, v in enumerate(kept):
        if not v.isidentifier():
            index[v] = i
    moved = {}                             # original slot -> new slot (only `__class__`)
    if freevars:
        moved[len(code.co_varnames) + len(cells) + frees.index("__class__")] = index["__class__"]

    pro = []
    if freevars:
        pro.append((_OP["COPY_FREE_VARS"], len(freevars)))
    if generator:           # the call returns the generator; its first next() goes on from here
        pro += [(_OP["RETURN_GENERATOR"], 0), (_OP["POP_TOP"], 0)]
    pro.append((_OP["RESUME"], 0))
    j = 0
    for s in stack:
        if s is NULL:
            pro.append((_OP["PUSH_NULL"], 0))
            continue
        pro.append((_OP["LOAD_FAST"], index[slots[j]]))
        j += 1
        if s is EXC:
            # the slot gets the exception the block handles: PUSH_EXC_INFO makes it the
            # thread's current exception again and leaves the state it saved in the slot
            pro += [(_OP["PUSH_EXC_INFO"], 0), (_OP["POP_TOP"], 0)]
        elif s is WITH:         # BEFORE_WITH leaves its __exit__ in the slot (and drops __enter__'s result)
            pro += [(_OP["BEFORE_WITH"], 0), (_OP["POP_TOP"], 0)]
    consts = code.co_consts
    call = []
    if inner is not None:
        consts = consts + (inner_fn,)
        pro += [(_OP["PUSH_NULL"], 0), (_OP["LOAD_CONST"], len(consts) - 1)]
        pro += [(_OP["LOAD_FAST"], index[p]) for p in inner_params]
        call = [(_OP["PRECALL"], n_inner)] + [(0, 0)] * _CACHES["PRECALL"]
        call += [(_OP["CALL"], n_inner)] + [(0, 0)] * _CACHES["CALL"]
    # the slots are deleted before the inner call (their values are on the stack): they keep
    # nothing alive during it, and a handler reached from it finds them gone
    pro += [(_OP["DELETE_FAST"], index[s]) for s in slots + inner_params]
    pro += [(_OP["DELETE_FAST"], index[d]) for d in dead if d not in code.co_cellvars]   # a cell: passed empty
    pro = _extend(pro)                     # arguments over 255 get EXTENDED_ARG prefixes
    call = _extend(call)
    extra = []
    size = 2 * (len(pro) + len(call) + 3)  # + EXTENDED_ARG x2, JUMP_FORWARD
    for e in dis._parse_exception_table(code) if call_offset is not None else ():
        if e.start <= call_offset < e.end:     # the original call's handler covers the inner call
            extra.append((len(pro), len(pro) + len(call), (e.target + size) // 2, e.depth, e.lasti))
            break
    pro += call
    delta = target_offset // 2             # from the end of JUMP_FORWARD, in code units
    if delta > 0xFFFFFF:
        raise Unsupported("a graph break in a function too large to resume", kind="graph_break_resume")
    pro += [(_EXTENDED_ARG, delta >> 16), (_EXTENDED_ARG, (delta >> 8) & 0xFF), (_OP["JUMP_FORWARD"], delta & 0xFF)]

    body = bytearray(code.co_code)
    extended = False
    for off in range(0, len(body), 2):
        op = body[off]
        if op in _PREFIX_OPS:
            body[off], body[off + 1] = _OP["NOP"], 0
        elif op in _LOCAL_OPS and (moved or dropped):
            old = body[off + 1]
            if extended:
                old |= body[off - 1] << 8
                if off >= 4 and body[off - 4] == _EXTENDED_ARG:
                    old |= body[off - 3] << 16
            new = moved.get(old)
            if old in dropped:      # in the earlier prologue, which the new one jumps over
                body[off], body[off + 1] = _OP["NOP"], 0
            elif new is not None:
                if new > 255 and not extended:
                    raise Unsupported("a graph break in a function that reads __class__ past 255 locals",
                                      kind="graph_break_resume")
                body[off + 1] = new & 0xFF
                if extended:
                    body[off - 1] = (new >> 8) & 0xFF
        extended = op == _EXTENDED_ARG
    co_code = bytes(b for op, arg in pro for b in (op, arg)) + bytes(body)
    flags = code.co_flags & ~(inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    new = code.replace(
        co_code=co_code, co_argcount=len(params), co_posonlyargcount=0, co_kwonlyargcount=0,
        co_nlocals=len(params), co_varnames=tuple(params),
        co_cellvars=code.co_cellvars + tuple(v for v in free_params if v in frees),
        co_freevars=tuple(freevars),
        co_flags=flags, co_stacksize=max(code.co_stacksize, len(stack) + n_inner + 3) + 2,
        co_consts=consts,
        co_linetable=_no_location(size // 2) + code.co_linetable,
        co_exceptiontable=_exception_table(code, size, extra), co_name=name,
        co_qualname=f"{code.co_qualname}.{name}")
    return new, params, size
