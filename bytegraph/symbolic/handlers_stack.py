"""Opcode handlers: stack shuffling, constants, locals, cells, globals, attributes."""
import types
import importlib.util
import sys

from ..exc import Unsupported, UserError
from ..values.base import NONE, ConstValue, wrap
from ..values.containers import TupleValue
from ..values.functions import CellValue, BoundMethodValue, UserFnValue
from ..values.objects import PyModuleValue
from .table import handler, NULL


@handler("NOP", "RESUME", "PRECALL", "EXTENDED_ARG")
def _nop(f, inst):
    pass


@handler("POP_TOP")
def _pop_top(f, inst):
    f.stack.pop()


@handler("PUSH_NULL")
def _push_null(f, inst):
    f.stack.append(NULL)


@handler("COPY")
def _copy(f, inst):
    f.stack.append(f.stack[-inst.arg])


@handler("SWAP")
def _swap(f, inst):
    s = f.stack
    s[-1], s[-inst.arg] = s[-inst.arg], s[-1]


def const_value(obj):
    if type(obj) is tuple:
        return TupleValue([const_value(x) for x in obj])
    if type(obj) is frozenset:
        from ..values.containers import SetValue
        return SetValue(obj, cls=frozenset, origin=obj)     # a code constant: iterate it as it is
    return ConstValue(obj) if obj is not None else NONE


@handler("LOAD_CONST")
def _load_const(f, inst):
    v = inst.argval
    if type(v) is types.FunctionType:     # an inlined frame's resume function (bytecode/resume.py)
        f.stack.append(UserFnValue(v, None))
        return
    f.stack.append(const_value(v))


@handler("LOAD_FAST")
def _load_fast(f, inst):
    try:
        f.stack.append(f.local(inst.argval))
    except KeyError:
        raise UserError(UnboundLocalError(f"local variable {inst.argval!r} referenced before assignment"))


@handler("STORE_FAST")
def _store_fast(f, inst):
    f.locals[inst.argval] = f.stack.pop()


@handler("DELETE_FAST")
def _delete_fast(f, inst):
    f.locals.pop(inst.argval, None)


@handler("MAKE_CELL")
def _make_cell(f, inst):
    name = inst.argval
    if name not in f.cells:
        f.cells[name] = CellValue(contents=f.local(name) if name in f.locals else None)
        f.locals.pop(name, None)


@handler("COPY_FREE_VARS")
def _copy_free_vars(f, inst):
    pass    # the frame's closure cells were installed when it was created


@handler("LOAD_CLOSURE")
def _load_closure(f, inst):
    f.stack.append(f.cells[inst.argval])


@handler("LOAD_DEREF")
def _load_deref(f, inst):
    f.stack.append(f.cells[inst.argval].get(f.tx))


@handler("STORE_DEREF")
def _store_deref(f, inst):
    f.cells[inst.argval].set(f.tx, f.stack.pop())


@handler("DELETE_DEREF")
def _delete_deref(f, inst):
    raise Unsupported("del of a closure variable", kind="delete_deref")


@handler("LOAD_GLOBAL")
def _load_global(f, inst):
    if inst.push_null:
        f.stack.append(NULL)
    f.stack.append(f.tx.load_global(f, inst.argval))


@handler("STORE_GLOBAL")
def _store_global(f, inst):
    f.tx.store_global(f, inst.argval, f.stack.pop())


@handler("DELETE_GLOBAL")
def _delete_global(f, inst):
    raise Unsupported("del of a global", kind="delete_global")


@handler("LOAD_ATTR")
def _load_attr(f, inst):
    obj = f.stack.pop()
    f.stack.append(load_attr(f.tx, obj, inst.argval))


def load_attr(tx, obj, name):
    try:
        return obj.getattr(tx, name)
    except AttributeError as e:
        raise UserError(e)


@handler("LOAD_METHOD")
def _load_method(f, inst):
    obj = f.stack.pop()
    f.stack.append(NULL)
    f.stack.append(get_method(f.tx, obj, inst.argval))


def get_method(tx, obj, name):
    table = getattr(obj, "METHODS", None)
    if table is not None and name in table:
        return BoundMethodValue(obj, name)
    if type(obj) is ConstValue:
        attr = getattr(obj.value, name, None)
        if callable(attr):
            return BoundMethodValue(obj, name)
    from ..values.objects import ModuleValue, _is_torch_nn_method
    from ..values.modules import MODULE_METHODS
    if isinstance(obj, ModuleValue) and name in MODULE_METHODS and _is_torch_nn_method(tx, obj.cls, name):
        return BoundMethodValue(obj, name)
    return load_attr(tx, obj, name)


@handler("STORE_ATTR")
def _store_attr(f, inst):
    obj = f.stack.pop()
    value = f.stack.pop()
    obj.setattr(f.tx, inst.argval, value)


@handler("DELETE_ATTR")
def _delete_attr(f, inst):
    f.stack.pop().delattr(f.tx, inst.argval)


@handler("IMPORT_NAME")
def _import_name(f, inst):
    fromlist = f.stack.pop().as_python()
    level = f.stack.pop().as_python()
    name = inst.argval
    absolute = name
    if level:                       # `from . import x`: resolved against the module's package
        package = f.globals.get("__package__") or f.globals.get("__name__", "").rpartition(".")[0]
        try:
            absolute = importlib.util.resolve_name("." * level + name, package)
        except (ImportError, ValueError) as e:
            raise UserError(ImportError(str(e)))
    pending = [f"{absolute}.{n}" for n in fromlist or () if n != "*" and
               not hasattr(sys.modules.get(absolute), n)]
    if absolute not in sys.modules or any(m not in sys.modules for m in pending):
        raise Unsupported(f"import of {absolute!r} inside a compiled region (not already imported)",
                          kind="import")
    mod = __import__(name, f.globals, None, fromlist, level)
    f.stack.append(PyModuleValue(mod))


@handler("IMPORT_FROM")
def _import_from(f, inst):
    mod = f.stack[-1]
    f.stack.append(load_attr(f.tx, mod, inst.argval))


@handler("LOAD_ASSERTION_ERROR")
def _load_assertion_error(f, inst):
    f.stack.append(wrap(f.tx, AssertionError, None))
