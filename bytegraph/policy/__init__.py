"""Call policy: what calling a function or a class means while tracing.

`calls` decides which callables become graph nodes (torch ops), which are refused, which user
registries apply, and how classes are constructed; `builtins` handles Python's builtin
functions over Values; `stdlib` and `stdlib_iter` model the standard library that real models
run (os.environ, copy, functools, itertools, collections, contextlib, warnings, logging, ...).

The policy sits above values/ and protocols/: it imports them, and installs the entry points
values/ needs into `values.base.POLICY` here, so no arrow points back up.
"""
from ..values.base import POLICY
from ..protocols import operators
from . import builtins, stdlib_iter, stdlib, calls, breaks

POLICY.classify_function = calls.classify_function
POLICY.user_registered = calls.user_registered
POLICY.lookup_override = calls.lookup_override
POLICY.construct = calls.construct
POLICY.call_on_constants = builtins.call_on_constants
POLICY.sorted_items = builtins.sorted_items
POLICY.bind_cached_method = stdlib.bind_cached_method
POLICY.tensor_read = breaks.tensor_read
POLICY.equal = operators.equal
