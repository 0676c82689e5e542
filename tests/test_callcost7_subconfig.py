"""Red-team probes for the sub-config snapshot (guards/memory.py: DictSnap, generation.py
`_dict_snaps`, docs/call_cost.md): on the dict path, the guards on the items of a sub-config's
raw instance dict (a transformers config held in another config's instance dict, like
hf/phi4_multimodal's vision config) are replaced by one compare of that dict's identity and
version tag with the ones read before the last check that passed. Each probe warms a compiled
model until the snapshot is in use, changes the sub-config without any module write, and checks
the result against eager and the recompile count. The first six fail when `DictSnap.same` is
replaced by `True`."""
import pytest
import torch

from differential import REFERENCE, compile_fn, ModelProbe, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")
transformers = pytest.importorskip("transformers")


class Sub(transformers.PretrainedConfig):
    model_type = "bytegraph_test_sub"


class Root(transformers.PretrainedConfig):
    model_type = "bytegraph_test_root"


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.config = Root(a=1, b=2.0)
        self.config.sub = Sub(**{f"k{i}": i for i in range(10)}, flag=True, name="x", none=None,
                              sizes=[1, 2])
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x):
        sub = self.config.sub
        y = self.lin(x) * self.config.a + self.config.b
        for i in range(10):
            y = y + getattr(sub, f"k{i}") * (i + 1)
        if sub.flag and sub.none is None and sub.name == "x":
            y = y * 2
        return y + len(sub.sizes) * 100


class Probe(ModelProbe):
    def __init__(self):
        torch.manual_seed(0)
        self.m = Net().eval()
        self.c = compile_fn(self.m, backend="eager")
        self.x = torch.randn(2, 3)
        for _ in range(4):
            self.run()
        ns = self.c.__dict__["_bytegraph_call"].__bytegraph_state__.entries[0].__globals__
        snaps = [v for k, v in ns.items() if k.startswith("_dict_snap")]
        # the snapshot is what this file probes: it must be in use before each mutation
        assert snaps and all(s.state[0] is not None for s in snaps)
        self.sub = self.m.config.sub


def test_item_set():
    p = Probe()
    p.sub.k3 = 100
    p.check(1)


def test_item_written_raw():
    p = Probe()
    p.sub.__dict__["k5"] = -7
    p.check(1)


def test_item_changed_and_back():
    p = Probe()
    p.sub.flag = False
    p.check(1)
    p.sub.flag = True           # the first entry again: its snapshot is re-taken, no recompile
    p.check(0)


def test_instance_dict_replaced():
    p = Probe()
    d = dict(p.sub.__dict__)
    d["k7"] = 70
    p.sub.__dict__ = d
    p.check(1)


def test_instance_dict_replaced_in_place_by_object_setattr():
    p = Probe()
    d = dict(p.sub.__dict__)
    d["name"] = "y"
    object.__setattr__(p.sub, "__dict__", d)
    p.check(1)


def test_item_deleted():
    p = Probe()
    del p.sub.__dict__["k2"]
    with torch.no_grad():
        with pytest.raises(AttributeError):
            p.m(p.x)
        with pytest.raises(AttributeError):
            p.c(p.x)


def test_same_value_set_again_is_a_hit():
    p = Probe()
    p.sub.k3 = 3
    p.check(0)


def test_mutable_item_mutated_in_place():
    # a list inside the sub-config: mutating it is no write to the sub-config's dict; its
    # guards are not covered by the snapshot
    p = Probe()
    p.sub.sizes.append(3)
    p.check(1)


def test_sub_config_replaced():
    p = Probe()
    p.m.config.sub = Sub(**{f"k{i}": 2 * i for i in range(10)}, flag=True, name="x", none=None,
                         sizes=[1, 2])
    p.check(1)


def test_sub_config_class_changed():
    class Sub2(Sub):
        model_type = "bytegraph_test_sub2"

        @property
        def k4(self):
            return 44

    p = Probe()
    p.sub.__class__ = Sub2
    p.check(1)
