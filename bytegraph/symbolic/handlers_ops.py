"""Opcode handlers: operators, subscripts, and building/unpacking containers."""
import operator

import torch

from ..values.symbolic import SymValue, SymSliceValue
from ..exc import Unsupported, UserError
from ..values.base import NONE, ConstValue, const
from ..policy.builtins import get_item
from ..protocols import binary_op, compare_op, contains_op, unary_op, is_same
from ..values.containers import (TupleValue, ListValue, DictValue, SetValue, py_key, mirror_of)
from ..values.tensor import TensorValue, graph_call
from ..values.known import known
from .table import handler


@handler("BINARY_OP")
def _binary_op(f, inst):
    b = f.stack.pop()
    a = f.stack.pop()
    f.stack.append(binary_op(f.tx, inst.argval, a, b))


@handler("COMPARE_OP")
def _compare_op(f, inst):
    b = f.stack.pop()
    a = f.stack.pop()
    f.stack.append(compare_op(f.tx, inst.argval, a, b))


@handler("IS_OP")
def _is_op(f, inst):
    b = f.stack.pop()
    a = f.stack.pop()
    same = is_same(a, b, f.tx)
    f.stack.append(const(same != bool(inst.arg)))


@handler("CONTAINS_OP")
def _contains_op(f, inst):
    container = f.stack.pop()
    item = f.stack.pop()
    r = contains_op(f.tx, item, container)
    if inst.arg:
        r = unary_op(f.tx, operator.not_, r) if not isinstance(r, TensorValue) else \
            graph_call(f.tx, "call_function", operator.invert, [r], {})
    f.stack.append(r)


_UNARY = {"UNARY_NEGATIVE": operator.neg, "UNARY_POSITIVE": operator.pos,
          "UNARY_INVERT": operator.invert, "UNARY_NOT": operator.not_}


@handler(*_UNARY)
def _unary(f, inst):
    f.stack.append(unary_op(f.tx, _UNARY[inst.opname], f.stack.pop()))


@handler("BINARY_SUBSCR")
def _binary_subscr(f, inst):
    idx = f.stack.pop()
    obj = f.stack.pop()
    f.stack.append(get_item(f.tx, obj, idx))


@handler("STORE_SUBSCR")
def _store_subscr(f, inst):
    idx = f.stack.pop()
    obj = f.stack.pop()
    value = f.stack.pop()
    store_item(f.tx, obj, idx, value)


def store_item(tx, obj, idx, value):
    if isinstance(obj, TensorValue):
        graph_call(tx, "call_function", operator.setitem, [obj, idx, value], {})
    elif isinstance(obj, DictValue):
        obj.setitem(tx, idx, value)
    elif isinstance(obj, ListValue):
        k = idx.as_python()
        obj.mutate(tx)
        if isinstance(k, slice):
            obj.items[k] = value.unpack(tx)
        else:
            try:
                obj.items[k] = value
            except IndexError as e:
                raise UserError(e)
    else:
        obj.call_method(tx, "__setitem__", [idx, value], {})


@handler("DELETE_SUBSCR")
def _delete_subscr(f, inst):
    idx = f.stack.pop()
    obj = f.stack.pop()
    if isinstance(obj, (ListValue, DictValue)):
        obj.mutate(f.tx)
        key = idx.as_python() if isinstance(obj, ListValue) else py_key(idx)
        try:
            del obj.items[key]
        except (IndexError, KeyError) as e:
            raise UserError(e)
    else:
        raise Unsupported(f"del on {obj}", kind="delete_subscr")


def _known_index(tx, v):
    """A one-element integer tensor the trace made from constants (`torch.IntTensor([16])[0]`:
    its fake tensor carries the value, which FakeTensorMode drops on any write to it), or whose
    value derives from module-state scalars (values/known.py, guarded), as the int a slice takes
    from its __index__; anything else as it is."""
    if type(v) is TensorValue and v.fake is not None:
        c = getattr(v.fake, "constant", None)
        if c is not None and c.numel() == 1 and not c.is_floating_point() and not c.is_complex() \
                and c.dtype is not torch.bool:
            known(tx, v)        # guards the roots it derives from (a write of theirs into it too)
            return ConstValue(int(c.item()))
    return v


@handler("BUILD_SLICE")
def _build_slice(f, inst):
    parts = [_known_index(f.tx, p) for p in f.stack[-inst.arg:]]
    del f.stack[-inst.arg:]
    if not all(p.is_const() for p in parts):
        raise Unsupported("slice bounds that are not trace-time constants", kind="slice")
    if any(isinstance(p, SymValue) for p in parts):
        f.stack.append(SymSliceValue(parts))      # x[:, :n] stays symbolic in the graph
        return
    f.stack.append(ConstValue(slice(*[p.as_python() for p in parts])))


@handler("BUILD_TUPLE")
def _build_tuple(f, inst):
    f.stack.append(TupleValue(f.popn(inst.arg)))


@handler("BUILD_LIST")
def _build_list(f, inst):
    f.stack.append(ListValue(f.popn(inst.arg)))


@handler("BUILD_SET")
def _build_set(f, inst):
    keys = [py_key(v) for v in f.popn(inst.arg)]
    real = set()
    for k in keys:                  # as BUILD_SET does: one insertion per item, in order
        real.add(k)
    f.stack.append(SetValue(keys, real=real))


@handler("BUILD_MAP")
def _build_map(f, inst):
    flat = f.popn(2 * inst.arg)
    f.stack.append(DictValue({py_key(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}))


@handler("BUILD_CONST_KEY_MAP")
def _build_const_key_map(f, inst):
    keys = f.stack.pop().as_python()
    vals = f.popn(inst.arg)
    f.stack.append(DictValue(dict(zip(keys, vals))))


@handler("BUILD_STRING")
def _build_string(f, inst):
    parts = f.popn(inst.arg)
    from ..values.opaque import join_text
    joined = join_text(parts)           # text formatted at a break: joined by the entry
    f.stack.append(joined if joined is not None else const("".join(p.as_python() for p in parts)))


@handler("FORMAT_VALUE")
def _format_value(f, inst):
    flags = inst.arg
    spec = f.stack.pop().as_python() if flags & 0x04 else ""
    v = f.stack.pop()
    conv = flags & 0x03
    from ..values.opaque import Opaque, OpaqueFormat, TEXT, format_later, producer_chain
    if isinstance(v, TensorValue):
        if not format_later(v, conv, spec):
            raise Unsupported("formatting a tensor into a string depends on its data", kind="data_dependent")
        # formatted by the entry from a copy the graph returns (a later in-place op must not
        # show); code that needs the text stops here and formats it in Python
        snap = graph_call(f.tx, "call_method", "clone", [graph_call(f.tx, "call_method", "detach", [v], {})], {})
        f.stack.append(OpaqueFormat(snap, conv, spec, producer_chain(f.tx)))
        return
    from ..policy.builtins import BUILTINS
    if type(v) in TEXT and conv in (0, 1) and not spec:
        f.stack.append(v)               # format(s, '') of a str is s itself
        return
    if conv in (2, 3):
        v = BUILTINS[repr](f.tx, v)
    elif conv == 1:
        v = BUILTINS[str](f.tx, v)      # f"{1.5!s:.2}" formats the string '1.5'
    elif spec and isinstance(v, SymValue):
        pass                # format(n, '03d') is int.__format__: the number (guarded) below
    elif type(v) is not ConstValue and not isinstance(v, (SymValue, Opaque)):
        f.stack.append(_format_protocol(f.tx, v, spec, BUILTINS[str]))
        return
    elif type(v) is not ConstValue:
        v = BUILTINS[str](f.tx, v)
    pv = v.as_python()
    if conv == 3:           # ascii(): the repr with non-ASCII characters escaped
        pv = pv.encode("ascii", "backslashreplace").decode("ascii")
    try:
        text = format(pv, spec)         # a constant's own __format__: builtin types only
    except (TypeError, ValueError) as e:
        raise UserError(e) from None    # f"{None:>5}", f"{3:q}": the user's error, as eager
    f.stack.append(const(text))


def _format_protocol(tx, v, spec, to_str):
    """format(v, spec) as CPython runs it: type(v).__format__(v, spec). A builtin type's
    __format__ with an empty spec is str(v); object's refuses a non-empty spec; any other
    (a user's, an enum's) is called through the protocol."""
    from ..protocols.special import C_LEVEL, call_special, lookup
    cls = v.python_type()
    attr, owner = lookup(tx, cls, "__format__")
    if isinstance(attr, C_LEVEL) and not spec:
        return to_str(tx, v)
    if owner is object:
        raise UserError(TypeError(f"unsupported format string passed to {cls.__name__}.__format__"))
    r = call_special(tx, v, "__format__", [const(spec)])
    if type(r) is ConstValue and not isinstance(r.value, str):
        raise UserError(TypeError(f"__format__ must return a str, not {type(r.value).__name__}"))
    if type(r) is not ConstValue:
        raise Unsupported(f"{cls.__name__}.__format__ returned {r}", kind="repr")
    return r


# The build instructions of displays and comprehensions (LIST_APPEND, SET_ADD, MAP_ADD,
# LIST_EXTEND, SET_UPDATE, DICT_UPDATE/DICT_MERGE) write into a container on the stack, which
# the trace built -- or which a resume function received from a break in the middle of the
# display or comprehension (`[x.sum(), *g(x)]` stopped at g, a comprehension whose body
# stopped): then it is the caller's object, and the write is a side effect like a method's.


def _built(f, inst):
    """The container the instruction writes into, marked written when it is a caller's."""
    target = f.stack[-inst.arg]
    if target.source is not None and type(target) is not SetValue:
        target.mutate(f.tx)
    return target


@handler("LIST_APPEND")
def _list_append(f, inst):
    v = f.stack.pop()
    _built(f, inst).items.append(v)


@handler("SET_ADD")
def _set_add(f, inst):
    v = f.stack.pop()
    target = f.stack[-inst.arg]
    if target.source is not None:
        target.call_method(f.tx, "add", [v], {})
        return
    target.items[py_key(v)] = None
    if target.real is not None:
        target.real.add(py_key(v))


@handler("MAP_ADD")
def _map_add(f, inst):
    v = f.stack.pop()
    k = f.stack.pop()
    _built(f, inst).items[py_key(k)] = v


@handler("LIST_EXTEND")
def _list_extend(f, inst):
    v = f.stack.pop()
    items = v.unpack(f.tx)
    _built(f, inst).items.extend(items)


@handler("SET_UPDATE")
def _set_update(f, inst):
    v = f.stack.pop()
    target = f.stack[-inst.arg]
    if target.source is not None:
        target.call_method(f.tx, "update", [v], {})
        return
    mirror = mirror_of(v) if target.real is not None else None
    for x in v.unpack(f.tx):
        target.items[py_key(x)] = None
    if mirror is None:
        target.real = None
    else:
        target.real.update(mirror)


@handler("DICT_UPDATE", "DICT_MERGE")
def _dict_update(f, inst):
    v = f.stack.pop()
    target = f.stack[-inst.arg]
    if isinstance(v, DictValue):
        if inst.opname == "DICT_MERGE":
            dup = set(v.items) & set(target.items)
            if dup:
                raise UserError(TypeError(f"got multiple values for keyword argument {dup.pop()!r}"))
        _built(f, inst).items.update(v.items)
    else:
        keys = v.call_method(f.tx, "keys", [], {}).unpack(f.tx)
        _built(f, inst)
        for k in keys:
            target.items[py_key(k)] = get_item(f.tx, v, k)


@handler("LIST_TO_TUPLE")
def _list_to_tuple(f, inst):
    f.stack.append(TupleValue(f.stack.pop().items))


@handler("UNPACK_SEQUENCE")
def _unpack_sequence(f, inst):
    items = f.stack.pop().unpack(f.tx)
    if len(items) != inst.arg:
        raise UserError(ValueError(f"expected {inst.arg} values to unpack, got {len(items)}"))
    f.stack.extend(reversed(items))


@handler("UNPACK_EX")
def _unpack_ex(f, inst):
    before, after = inst.arg & 0xFF, inst.arg >> 8
    items = f.stack.pop().unpack(f.tx)
    if len(items) < before + after:
        raise UserError(ValueError("not enough values to unpack"))
    mid = ListValue(items[before:len(items) - after])
    out = items[:before] + [mid] + items[len(items) - after:]
    f.stack.extend(reversed(out))
