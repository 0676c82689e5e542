"""Warm start of entries whose guards pin Enum members by identity (dict keys, an argument
compared with `is`): the member is found again by its class and name (runtime/warm.py recipe
"enum"). Each phase is a fresh interpreter; every call is compared with eager."""
import textwrap

from warm_harness import run_phase, write_module


USER_MODULE = textwrap.dedent('''
    import enum
    import torch

    class Color(enum.Enum):
        RED = 1
        BLUE = 2
        SCARLET = 1          # an alias of RED

    TABLE = {Color.RED: 2.0, Color.BLUE: 3.0}

    def f(x):
        return x * TABLE[Color.RED]

    def h(x, c):
        return x * TABLE[c] + (1 if c is Color.BLUE else 0)
''')

PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import enummod as m
    x = torch.randn(4)
    calls = {"f": (m.f, [(x,)]), "h": (m.h, [(x, m.Color.BLUE), (x, m.Color.SCARLET)])}
    ok = {}
    for name in spec["fns"]:
        fn, arg_list = calls[name]
        compiled = bytegraph.compile(fn, backend="eager")
        ok[name] = all(torch.allclose(compiled(*a), fn(*a)) for a in arg_list for _ in range(2))
    print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')


def _phase(work, fns):
    return run_phase(PHASE, work, fns)


def _write(work, text):
    write_module(work, "enummod.py", text)


def test_enum_keys_warm(tmp_path):
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["f", "h"])
    assert cold["ok"] == {"f": True, "h": True}, cold
    assert not cold["warm"].get("unportable") and cold["warm"].get("saved"), cold
    warm = _phase(tmp_path, ["f", "h"])
    assert warm["ok"] == {"f": True, "h": True}, warm
    assert warm["warm"].get("hit") == 2 and warm["frames"].get("total", 0) == 0, warm


def test_enum_member_renamed_misses(tmp_path):
    # the stored recipe names Color.RED; in the warm process that member is gone (renamed):
    # the record is not used, h is traced again and is correct
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["h"])
    assert cold["ok"] == {"h": True} and cold["warm"].get("saved"), cold
    _write(tmp_path, USER_MODULE.replace("RED = 1", "CRIMSON = 1").replace("Color.RED", "Color.CRIMSON"))
    warm = _phase(tmp_path, ["h"])
    assert warm["ok"] == {"h": True}, warm
    assert not warm["warm"].get("hit") and warm["frames"]["total"] >= 1, warm


def test_enum_table_changed_rejected(tmp_path):
    # same members, another value in the table: the stored guards reject, h is traced again
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["h"])
    assert cold["ok"] == {"h": True}, cold
    _write(tmp_path, USER_MODULE.replace("Color.BLUE: 3.0", "Color.BLUE: 5.0"))
    warm = _phase(tmp_path, ["h"])
    assert warm["ok"] == {"h": True}, warm
    assert warm["frames"]["total"] >= 1, warm
