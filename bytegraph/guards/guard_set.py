"""GuardSet: every assumption a trace made, as Python boolean expressions on Sources.

The tracer calls the `add_*` helpers whenever it specializes on something from
the caller's world (a tensor's metadata, a Python value, an object's identity,
global torch state). Guards are deduplicated and kept in the order they were
added, which is also dependency order (a container's type/len guard precedes
the guards on its items). Global-state guards come first: they are cheapest.

Each add_* is deduplicated on (kind, source) before rendering, because a source's
first rendering binds a local (see Codegen.source) and later ones differ in text.
The generated entry function evaluates them as one `and` chain; any exception
while evaluating counts as a miss. `first_failure()` re-evaluates them one by
one (slow path only) to name the guard that failed for recompile messages.
"""
import math

import torch


class Guard:
    __slots__ = ("code", "source_desc", "kind")

    def __init__(self, code, source_desc, kind):
        self.code = code
        self.source_desc = source_desc
        self.kind = kind

    def __repr__(self):
        return f"Guard({self.kind}: {self.code})"


class GuardSet:
    def __init__(self, cg):
        self.cg = cg                  # the codegen namespace shared with the entry function
        self.guards = []
        self._seen = set()

    def _add(self, code, source, kind):
        if code in self._seen:
            return
        self._seen.add(code)
        self.guards.append(Guard(code, source.name_hint() if source is not None else "global", kind))

    # --- global torch state -------------------------------------------------
    def add_global_state(self):
        cg = self.cg
        t = cg.const(torch, "torch")
        self._add(f"{t}.is_grad_enabled() is {torch.is_grad_enabled()}", None, "grad_mode")
        self._add(f"{t}.get_default_dtype() is {cg.const(torch.get_default_dtype(), 'dtype')}",
                  None, "default_dtype")
        self._add(f"{t}.are_deterministic_algorithms_enabled() is "
                  f"{torch.are_deterministic_algorithms_enabled()}", None, "deterministic")
        # set_default_device and any TorchFunctionMode change what factory calls produce
        self._add(f"{t}._C._len_torch_function_stack() == {torch._C._len_torch_function_stack()}",
                  None, "torch_function_mode")
        on = torch.is_autocast_enabled("cpu")
        check = f"{t}.is_autocast_enabled('cpu') is {on}"
        if on:
            check += f" and {t}.get_autocast_dtype('cpu') is {cg.const(torch.get_autocast_dtype('cpu'), 'dtype')}"
        self._add(check, None, "autocast")

    # --- specializations on sourced values -----------------------------------
    def add_type(self, source, typ):
        if ("type", source) in self._seen:
            return
        self._seen.add(("type", source))
        self._add(f"type({source.expr(self.cg)}) is {self.cg.const(typ, typ.__name__)}", source, "type")

    def add_identity(self, source, obj):
        if ("id", source) in self._seen:
            return
        self._seen.add(("id", source))
        name = getattr(obj, "__name__", type(obj).__name__)
        self._add(f"{source.expr(self.cg)} is {self.cg.const(obj, str(name))}", source, "id")

    def add_same_object(self, source, other_source):
        if ("alias", source, other_source) in self._seen:
            return
        self._seen.add(("alias", source, other_source))
        self._add(f"{source.expr(self.cg)} is {other_source.expr(self.cg)}", source, "alias")

    def add_value(self, source, value):
        """Type and value equality for constants (int, float, str, bool, None, ...)."""
        if ("value", source) in self._seen:
            return
        self._seen.add(("value", source))
        first = source.expr(self.cg)
        e = self.cg.bound(source)
        if value is None or type(value) is bool:
            self._add(f"{first} is {value!r}", source, "value")
            return
        tname = self.cg.const(type(value), type(value).__name__)
        if type(value) in (int, str) or (type(value) is float and value == value
                                          and value not in (float("inf"), float("-inf"))):
            lit = repr(value)
        else:
            lit = self.cg.const(value, "v")
        if type(value) is float and value != value:
            self._add(f"type({first}) is {tname} and {e} != {e}", source, "value")
        elif type(value) is float and value == 0.0:      # 0.0 == -0.0: compare the sign too
            sign = self.cg.const(math.copysign, "copysign")
            self._add(f"type({first}) is {tname} and {e} == 0.0 and {sign}(1.0, {e}) == "
                      f"{math.copysign(1.0, value)}", source, "value")
        elif type(value) is range:                        # range equality is sequence equality
            self._add(f"type({first}) is {tname} and ({e}.start, {e}.stop, {e}.step) == "
                      f"{(value.start, value.stop, value.step)!r}", source, "value")
        else:
            self._add(f"type({first}) is {tname} and {e} == {lit}", source, "value")

    def add_len(self, source, typ, n):
        if ("len", source) in self._seen:
            return
        self._seen.add(("len", source))
        first = source.expr(self.cg)
        e = self.cg.bound(source)
        self._add(f"type({first}) is {self.cg.const(typ, typ.__name__)} and len({e}) == {n}", source, "len")

    def add_dict_keys(self, source, typ, keys):
        if ("keys", source) in self._seen:
            return
        self._seen.add(("keys", source))
        first = source.expr(self.cg)
        e = self.cg.bound(source)
        keys = list(keys)
        code = (f"type({first}) is {self.cg.const(typ, typ.__name__)} and list({e}.keys()) == "
                f"{self.cg.const(keys, 'keys')}")
        if any(type(k) is not str for k in keys):     # 1 == True == 1.0: compare key types too
            code += f" and list(map(type, {e})) == {self.cg.const([type(k) for k in keys], 'key_types')}"
        self._add(code, source, "dict_keys")

    def add_empty(self, source):
        if ("empty", source) in self._seen:
            return
        self._seen.add(("empty", source))
        self._add(f"not {source.expr(self.cg)}", source, "empty")

    def add_tensor(self, source, t):
        """Everything about a tensor input the trace (and the backend) may specialize on."""
        cg = self.cg
        if ("tensor", source) in self._seen:
            return
        self._seen.add(("tensor", source))
        first = source.expr(cg)
        e = cg.bound(source)
        ttype = cg.const(type(t), type(t).__name__)
        checks = [f"type({first}) is {ttype}",
                  f"{e}.dtype is {cg.const(t.dtype, 'dtype')}",
                  f"{e}.shape == {tuple(t.shape)!r}",
                  f"{e}.stride() == {tuple(t.stride())!r}",
                  f"{e}.requires_grad is {t.requires_grad}"]
        if t.device.type != "cpu":
            checks.append(f"{e}.device == {cg.const(t.device, 'device')}")
        else:
            checks.append(f"{e}.is_cpu")
        if t.storage_offset():
            checks.append(f"{e}.storage_offset() == {t.storage_offset()}")
        self._add(" and ".join(checks), source, "tensor")

    def add_code(self, code, source, kind):
        self._add(code, source, kind)

    def add_distinct(self, sources, kind="distinct_inputs"):
        """These sources are distinct objects (e.g. one tensor passed twice would alias two
        placeholders that the graph, and backends, treat as independent)."""
        if len(sources) > 1:
            ids = ", ".join(f"id({self.cg.bound(s)})" for s in sources)
            self._add(f"len({{{ids}}}) == {len(sources)}", None, kind)

    def add_absent(self, source, names):
        """None of `names` is in the object's instance __dict__ (class attributes it read,
        attributes it found missing): a later instance attribute would shadow them."""
        self._add(f"{self.cg.bound(source)}.__dict__.keys().isdisjoint("
                  f"{self.cg.const(frozenset(names), 'names')})", source, "absent_attrs")

    # --- evaluation ---------------------------------------------------------
    def expression(self):
        return " and ".join(f"({g.code})" for g in self.guards) or "True"

    def __len__(self):
        return len(self.guards)
