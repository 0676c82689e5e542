"""What a failed guard means, in user terms: the recompile reasons (logger `bytegraph.recompiles`,
`set_stance("fail_on_recompile")`, the cache-limit warning).

Each guard kind has a describer here, reading the structured `Guard` record (guards/guard_set.py):
its kind, its source's name, what the trace saw (`expected`) and `fetch`, the code that reads the
value now. This runs only on the slow path (a call missed every entry), never in the entry, so
the generated check stays exactly the code the GuardSet rendered. `KINDS` lists every kind that
has a describer; tests/test_recompile_reasons.py checks it covers every kind the code creates.
"""
import torch

_TENSOR_FIELDS = ("type", "dtype", "size", "stride", "requires_grad", "device")
_PLAIN = (str, int, float, bool, type(None), torch.dtype, torch.device)

# global-state getters (guard_set._state_check hints) in words
_STATE_HINTS = {
    "grad": "grad mode", "inference": "inference mode", "default_dtype": "default dtype",
    "deterministic": "deterministic algorithms", "det_warn_only": "deterministic algorithms warn_only",
    "det_fill": "deterministic fill_uninitialized_memory", "tf_stack": "torch function mode stack depth",
    "any_autocast": "autocast enabled", "autocast_cache": "autocast cache enabled",
    "autocast_on": "autocast enabled on", "autocast_dtype": "autocast dtype on",
    "fp32_precision": "fp32 precision of", "cpu_fp16_reduce": "CPU fp16 reduced-precision reduction",
    "mkldnn": "mkldnn enabled", "num_threads": "torch.get_num_threads()",
    "fp16_reduce": "cuBLAS fp16 reduced-precision reduction",
    "bf16_reduce": "cuBLAS bf16 reduced-precision reduction", "cudnn": "cudnn enabled",
}
STATE_KINDS = ("grad_mode", "inference_mode", "default_dtype", "deterministic", "torch_function_mode",
               "autocast", "backend_flags")


def plain(v):
    """Plain data (no caller object): what an entry may keep in a guard's `expected`."""
    if type(v) in (tuple, frozenset):
        return all(plain(x) for x in v)
    return type(v) in _PLAIN


def _show_value(v):
    """repr() of plain values only: a user object's __repr__ is user code."""
    if plain(v):
        return repr(v)
    return f"a {type(v).__qualname__}"


def _where(g):
    where = g.source_desc
    if where.startswith("G['"):
        return f"global '{where[3:-2]}'"
    return where


def _differs(was, new):
    """None in an expected tuple is a symbolic size or stride: anything matches it."""
    if type(was) is tuple and type(new) is tuple:
        return len(was) != len(new) or any(w is not None and w != n for w, n in zip(was, new))
    return was != new


def _show_dims(v):
    if type(v) is tuple:
        return "(" + ", ".join("*" if x is None else str(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def _type_name(v):
    return type(v).__qualname__


# --------------------------------------------------------------------------- describers
# each: (guard, the value its source has now -- or None when unknown --, namespace) -> text

def _state(g, now, ns):
    words = {"grad_mode": "grad mode", "inference_mode": "inference mode", "default_dtype": "default dtype",
             "deterministic": "deterministic algorithms", "torch_function_mode": "torch function mode stack",
             "autocast": "autocast state", "backend_flags": "backend flags"}[g.kind]
    changes = []
    for fn, hint, args, was in g.expected or ():
        try:
            is_now = fn(*args)
        except Exception:        # noqa: BLE001 - a getter that raises now: report the kind only
            continue
        if is_now != was:
            what = _STATE_HINTS.get(hint, hint) + (" " + "/".join(map(str, args)) if args else "")
            changes.append(f"{what} changed: {was} -> {is_now}")
    return "; ".join(changes) if changes else f"{words} changed"


def _type(g, now, ns):
    return f"type of {_where(g)} changed: expected {g.expected}, got {_type_name(now)}"


def _identity(g, now, ns):
    was = f"{g.expected}" if g.expected is not None else "the object the trace saw"
    return f"{_where(g)} is no longer the same object: expected {was}, got {_show_value(now)}" \
        if plain(now) else f"{_where(g)} is no longer the same object: expected {was}, got another " \
                           f"{_type_name(now)}"


def _alias(g, now, ns):
    return f"{_where(g)} is no longer the same object as {g.expected}"


def _value(g, now, ns):
    if g.expected is None and g.source is None:
        return f"value of {_where(g)} changed"
    return f"{_where(g)} changed: {_show_value(g.expected)} -> {_show_value(now)}"


def _len(g, now, ns):
    exp = g.expected
    typ, n = exp if type(exp) is tuple else (None, exp)
    if typ is not None and _type_name(now) != typ:
        return f"type of {_where(g)} changed: expected {typ}, got {_type_name(now)}"
    try:
        got = len(now)
    except Exception:            # noqa: BLE001
        got = "?"
    return f"len of {_where(g)} changed: expected {n}, got {got}"


def _dict_keys(g, now, ns):
    try:
        got = tuple(dict.keys(now)) if isinstance(now, dict) else _type_name(now)
    except Exception:            # noqa: BLE001
        got = "?"
    if g.expected is None:
        return f"keys of {_where(g)} changed: got {got}"
    return f"keys of {_where(g)} changed: expected {g.expected}, got {got}"


def _empty(g, now, ns):
    return f"{_where(g)} is no longer empty"


def _tensor(g, now, ns):
    where = _where(g)
    if isinstance(g.expected, tuple) and issubclass(type(now), torch.Tensor):
        have = (type(now), now.dtype, tuple(now.shape), tuple(now.stride()), now.requires_grad, now.device)
        for field, was, new in zip(_TENSOR_FIELDS, g.expected, have):
            if _differs(was, new):
                if field == "type":
                    was, new = was.__qualname__, new.__qualname__
                return f"{field} of {where} changed: expected {_show_dims(was)}, got {new}"
        if now.storage_offset() != 0:
            return f"storage offset of {where} changed: got {now.storage_offset()}"
        return f"the strides of {where} no longer follow its sizes as they did: got {have[3]} for " \
               f"sizes {have[2]}"
    if not issubclass(type(now), torch.Tensor):
        return f"{where} is no longer a tensor: got {_type_name(now)}"
    return f"tensor metadata of {where} changed"


def _shape(g, now, ns):
    from .guard_set import readable
    return f"shape guard failed: {readable(g.code)}"


def _float_finite(g, now, ns):
    return f"{_where(g)} is no longer a finite float: got {_show_value(now)}"


def _distinct(what):
    def describe(g, now, ns):
        names = ", ".join(g.expected or ()) or "objects"
        return f"{what} are no longer distinct objects: {names}"
    return describe


def _absent(g, now, ns):
    where, names = _where(g), g.expected or ()
    d = getattr(now, "__dict__", None)
    found = sorted(n for n in names if type(d) is dict and n in d) if names else []
    for dname in ("_parameters", "_buffers", "_modules"):
        sub = d.get(dname) if type(d) is dict else None
        if type(sub) is dict:
            found += sorted(n for n in names if n in sub)
    return f"{where} now has its own attribute(s) {', '.join(found) or 'shadowing what the trace read'}" \
           f" (the trace read them from its class, or found them missing)"


def _class_absent(g, now, ns):
    cls, names = g.expected or ("a class", ())
    # name only those the class defines now, when the entry's namespace holds it
    for v in (ns or {}).values():
        if isinstance(v, type) and v.__qualname__ == cls and not set(names).isdisjoint(v.__dict__):
            names = [n for n in names if n in v.__dict__]
            break
    return f"class {cls} now defines {', '.join(sorted(names))} itself (the trace found them on a base " \
           f"class or missing)"


def _builtins_shadowed(g, now, ns):
    names = ", ".join(sorted(g.expected or ()))
    return f"a module global now shadows the builtin(s) {names}"


def _abc(g, now, ns):
    return "an ABC registration changed (abc.register after the trace): isinstance/issubclass " \
           "answers may differ"


def _copyreg(g, now, ns):
    return f"copyreg.dispatch_table now has a reducer for {g.expected}"


def _changed(label, read=lambda now: now):
    """A guard `read(<fetch>) == expected`: `label(g)` names what it reads."""
    def describe(g, now, ns):
        try:
            got = _show_value(read(now))
        except Exception:        # noqa: BLE001
            got = "?"
        return f"{label(g)} changed: {_show_value(g.expected)} -> {got}"
    return describe


def _overlap(g, now, ns):
    group, i, j = now
    firsts, seconds = g.expected[group]
    return (f"{firsts[i]} and {seconds[j]} share memory now (the trace read the first's value, "
            f"and the graph writes the second)")


def _iterator(g, now, ns):
    return f"the position of iterator {_where(g)} changed"


def _set(g, now, ns):
    return f"{_where(g)} changed: expected {g.expected!r}, got {_show_value(now) if plain(now) else now!r}" \
        if type(now) in (set, frozenset) and plain(frozenset(now)) else f"{_where(g)} changed"


def _no_hooks(g, now, ns):
    hooks = [n for n in g.expected or () if getattr(now, n, None)]
    return f"hooks were registered on module {_where(g)} ({', '.join(hooks) or 'a hook dict'} no longer empty)"


def _environ(g, now, ns):
    return "os.environ changed (the trace iterated it)"


KINDS = {
    **{k: _state for k in STATE_KINDS},
    "type": _type, "id": _identity, "alias": _alias, "value": _value, "len": _len,
    "dict_keys": _dict_keys, "empty": _empty, "tensor": _tensor, "shape_range": _shape,
    "shape_env": _shape, "float_finite": _float_finite,
    "distinct_inputs": _distinct("tensor arguments the graph writes into"),
    "distinct_objects": _distinct("caller objects the trace mutates"),
    "identity": _distinct("objects the trace compared with `is`"),
    "absent_attrs": _absent, "class_attr_absent": _class_absent,
    "class_mro": lambda g, now, ns: f"the bases of class {g.expected} changed (its MRO differs)",
    "builtins_not_shadowed": _builtins_shadowed, "abc_registry": _abc, "copyreg": _copyreg,
    "defaults": lambda g, now, ns: f"defaults of {g.expected or 'the function'} changed",
    "code": lambda g, now, ns: f"the code of {g.expected or 'the function'} was replaced",
    "method_name": _changed(lambda g: f"method name of {_where(g)}", lambda now: now.__name__),
    "deque_maxlen": _changed(lambda g: f"maxlen of {_where(g)}", lambda now: now.maxlen),
    "autocast_args": _changed(lambda g: f"autocast args of {_where(g)}", lambda now: now.args),
    "tensor_meta": _changed(lambda g: f"tensor metadata {g.label}"),
    "torch_query": _changed(lambda g: g.label),
    "state_value": _changed(lambda g: f"the value of {g.label}"),
    "storages_apart": _overlap,
    "logging": _changed(lambda g: f"logging {g.label}"),
    "iterator_exhausted": _iterator, "iterator_position": _iterator, "set": _set,
    "loop_has_next": lambda g, now, ns: f"the loop's iterator {_where(g)} has no next item now",
    "loop_done": lambda g, now, ns: f"the loop's iterator {_where(g)} has a next item now",
    "no_hooks": _no_hooks, "environ": _environ,
    "handoff": lambda g, now, ns: f"the @contextmanager generator handed to {_where(g)} is at another "
                                  "yield, or Python made it real",
}


def describe(g, ns):
    """A failed guard in user terms. `ns`: the entry's namespace with the call's arguments bound."""
    try:
        now = eval(g.fetch, ns) if g.fetch is not None else None
    except Exception:            # noqa: BLE001 - the source no longer resolves
        now = None
    fn = KINDS.get(g.kind)
    if fn is not None:
        try:
            return fn(g, now, ns)
        except Exception:        # noqa: BLE001 - never let a message fail a recompile
            pass
    return f"{_where(g)}: {g.kind} guard failed ({g.code})"
