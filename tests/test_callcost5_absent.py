"""Probes for the `absent_attrs` guards on a config-like object reached through a module
(guards/guard_set.py: add_absent reads the instance dict raw; guards/generation.py: DictWatch
covers such a guard with the object's instance dict version tag, its identity and the MRO's
class dicts while the module generation counter keeps the object stable). The forward reads a
class attribute through the instance; each probe then makes an instance attribute shadow it,
or changes the class, by every route, and checks the result against eager and the recompile
count. Both a plain class and one with a Python-level __getattribute__ (transformers'
PretrainedConfig has one) are probed."""
import pytest
import torch
import torch.nn as nn

from differential import REFERENCE, compile_fn, ModelProbe, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


class Cfg:
    scale = 2.0

    def __init__(self):
        self.width = 4


class HookedCfg(Cfg):
    calls = 0

    def __getattribute__(self, key):
        return super().__getattribute__(key)


class Other(Cfg):
    scale = 7.0


class Net(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.cfg = cfg

    def forward(self, x):
        return self.lin(x) * self.cfg.scale + self.cfg.width


class Probe(ModelProbe):
    def __init__(self, cfg_cls):
        torch.manual_seed(0)
        self.m = Net(cfg_cls()).eval()
        self.c = compile_fn(self.m, backend="eager")
        self.x = torch.randn(2, 4)
        for _ in range(4):
            self.run()


@pytest.fixture(params=[Cfg, HookedCfg], ids=["plain", "getattribute"])
def probe(request):
    # a fresh class per test: class attributes are changed by some probes
    base = request.param
    cls = type(base.__name__, (base,), {"scale": 2.0})
    return Probe(cls)


def test_instance_attribute_shadows(probe):
    probe.m.cfg.scale = 3.0
    probe.check(1)


def test_instance_dict_write(probe):
    object.__getattribute__(probe.m.cfg, "__dict__")["scale"] = 3.0
    probe.check(1)


def test_object_setattr(probe):
    object.__setattr__(probe.m.cfg, "scale", 3.0)
    probe.check(1)


def test_instance_dict_replaced(probe):
    probe.m.cfg.__dict__ = {"width": 4, "scale": 3.0}
    probe.check(1)


def test_class_attribute_changed(probe):
    type(probe.m.cfg).scale = 5.0
    probe.check(1)


def test_class_changed(probe):
    probe.m.cfg.__class__ = Other
    probe.check(1)


def test_shadow_then_remove(probe):
    probe.m.cfg.scale = 3.0
    probe.check(1)
    del probe.m.cfg.scale
    probe.check(0)               # the first entry again


def test_config_replaced_then_mutated(probe):
    old = probe.m.cfg
    probe.m.cfg = type(old)()
    probe.check(0)               # equal config: same guards pass
    probe.m.cfg.scale = 3.0
    probe.check(1)
    old.scale = 9.0              # the old object no longer matters
    probe.check(0)


def test_unrelated_instance_attribute(probe):
    probe.m.cfg.other = 1        # a name the trace did not read: no miss
    probe.check(0)


def test_bases_reassigned_same_result():
    class A:
        scale = 2.0

    class B:
        scale = 5.0

    class C(A):
        def __init__(self):
            self.width = 4
    p = Probe(C)
    C.__bases__ = (B,)            # a new MRO: scale now found in B
    p.check(1)
