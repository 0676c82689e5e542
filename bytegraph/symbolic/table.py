"""The opcode table: one handler per opname, or an explicit reason it is unsupported.

`@handler("OPNAME", ...)` registers a handler `(frame, inst) -> None`. Registration
refuses duplicates and names that the running Python does not have, so the table
cannot silently drift from `dis.opmap`. UNSUPPORTED holds a reason for every opcode
we deliberately do not interpret; a test checks that every opcode is in one of them.
"""
import dis

HANDLERS = {}
UNSUPPORTED = {}
NULL = type("NULL", (), {"__repr__": lambda self: "NULL"})()   # the stack's NULL marker


def handler(*opnames):
    def deco(fn):
        for name in opnames:
            if name not in dis.opmap:
                raise ValueError(f"{name} is not an opcode of this Python")
            if name in HANDLERS or name in UNSUPPORTED:
                raise ValueError(f"{name} registered twice")
            HANDLERS[name] = fn
        return fn
    return deco


def unsupported(reason, *opnames):
    for name in opnames:
        if name not in dis.opmap:
            raise ValueError(f"{name} is not an opcode of this Python")
        if name in HANDLERS or name in UNSUPPORTED:
            raise ValueError(f"{name} registered twice")
        UNSUPPORTED[name] = reason


unsupported("except* (exception groups) is not captured", "PREP_RERAISE_STAR", "CHECK_EG_MATCH")
unsupported("async code is not captured", "BEFORE_ASYNC_WITH", "GET_AWAITABLE", "GET_AITER",
            "GET_ANEXT", "END_ASYNC_FOR", "ASYNC_GEN_WRAP")
unsupported("module- and class-body code is not compiled (it runs once)", "LOAD_NAME", "STORE_NAME",
            "DELETE_NAME", "LOAD_CLASSDEREF", "SETUP_ANNOTATIONS", "LOAD_BUILD_CLASS", "IMPORT_STAR",
            "PRINT_EXPR")
unsupported("internal to CPython's specializer; never in a code object's co_code", "CACHE")
