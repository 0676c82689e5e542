"""Red-team probes: writes that bypass nn.Module.__setattr__ must be seen by a cache hit.

A cache hit skips the module-structure guards while the generation counter
(guards/generation.py) is unchanged; the counter sees nn.Module.__setattr__/__delattr__ and the
tracked dicts' methods. The writes below go around those (`m.__dict__[k] = v`,
`object.__setattr__`, `vars(m).update`, `dict.__setitem__(m._parameters, ...)`, a hook dict
replaced in `__dict__`); the fast path also compares the version tags of the tracked modules'
dicts, gathered in one read (generation.ModuleTags), so each of them is seen on the next call.
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
