"""Differential programs: inlined calls — user functions, closures, defaults, *args/**kwargs, partial, lambdas, recursion, generators."""
import functools

import pytest
import torch

from differential import check, tensors_like


def ids(fn):
    return fn.__name__


# --------------------------------------------------------------------------- helpers called from compiled code
def _affine(x, scale, shift=0.0):
    return x * scale + shift


def _kwonly(x, *, alpha=1.0, beta=2.0):
    return x * alpha - beta


def _varargs(*args, **kwargs):
    total = sum(args)
    for k in sorted(kwargs):
        total = total + kwargs[k]
    return total, len(args), sorted(kwargs)


def _multi_return(x):
    return x.sum(), x.mean(), x.shape


def _apply(fn, *args, **kwargs):
    return fn(*args, **kwargs)


def _fact(n):
    return 1 if n <= 1 else n * _fact(n - 1)


def _tree_sum(node):
    if isinstance(node, (list, tuple)):
        return sum(_tree_sum(c) for c in node)
    return node


def _tree_map(fn, node):
    if isinstance(node, list):
        return [_tree_map(fn, c) for c in node]
    if isinstance(node, dict):
        return {k: _tree_map(fn, v) for k, v in node.items()}
    return fn(node)


def _pow_rec(x, n):
    if n == 0:
        return torch.ones_like(x)
    return x * _pow_rec(x, n - 1)


def _gen(x, n):
    for i in range(n):
        yield x * i


def _gen_pairs(d):
    for k, v in d.items():
        yield k, v


def _gen_yield_from(x):
    yield x
    yield from _gen(x, 2)


# --------------------------------------------------------------------------- programs
def k_user_fn(x):
    return _affine(x, 2.0) + _affine(x, 3.0, shift=1.0)


def k_default_and_kw(x):
    return _affine(x, scale=0.5), _affine(shift=2, x=x, scale=1)


def k_kwonly(x):
    return _kwonly(x), _kwonly(x, beta=0.0), _kwonly(x, alpha=3.0, beta=1.0)


def k_star_args_call(x):
    args = (x, 2.0)
    kwargs = {"shift": 1.0}
    return _affine(*args, **kwargs), _affine(*[x], **{"scale": 3})


def k_varargs_fn(x):
    t, n, keys = _varargs(x, x * 2, 3, a=1, b=x)
    return t, n, keys, _varargs()


def k_multi_return(x):
    s, m, shape = _multi_return(x)
    return s * m, shape


def k_higher_order(x):
    return _apply(torch.add, x, 1), _apply(_affine, x, 2, shift=3), _apply(lambda t: t.relu(), x)


def k_nested_function(x):
    def inner(y, k=2):
        return y * k

    def outer(y):
        return inner(y) + inner(y, k=3)

    return outer(x)


def k_closure_read(x):
    scale = x.shape[0]
    bias = x.sum(0)

    def f(t):
        return t * scale + bias

    return f(x)


def k_closure_nonlocal(x):
    count = 0
    acc = x

    def step(t):
        nonlocal count, acc
        count += 1
        acc = acc + t
        return acc

    step(x)
    step(x * 2)
    return acc, count


def k_closure_factory(x):
    def make(k):
        def g(t):
            return t * k
        return g

    fs = [make(i) for i in range(3)]
    return [f(x) for f in fs]


def k_closure_late_binding(x):
    fs = [lambda t: t * i for i in range(3)]
    return [f(x) for f in fs]


def k_lambda(x):
    sq = lambda t: t * t  # noqa: E731
    add = lambda a, b=1: a + b  # noqa: E731
    return sq(x), add(x), add(x, b=x), (lambda: 42)()


def k_partial(x):
    p = functools.partial(_affine, scale=2.0)
    q = functools.partial(torch.clamp, min=-0.1)
    r = functools.partial(_affine, x)
    return p(x), p(x, shift=1.0), q(x, max=0.2), r(3)


def k_recursion_int(x):
    return x * _fact(5), _pow_rec(x, 3)


def k_recursion_structure(x):
    nested = [1, [2, 3, [4]], (5,)]
    tensors = [x, [x * 2, {"a": x * 3}]]
    return x + _tree_sum(nested), _tree_map(lambda t: t + 1, tensors)


def k_generator_sum(x):
    return sum(x * i for i in range(4)), sum(_gen(x, 3))


def k_generator_list(x):
    return list(_gen(x, 3)), dict(_gen_pairs({"a": x, "b": 1})), list(_gen_yield_from(x))


def k_generator_next(x):
    g = _gen(x, 5)
    a = next(g)
    b = next(g)
    return a + b


def k_generator_zip(x):
    return [a + b for a, b in zip(_gen(x, 3), _gen(x, 3))]


def k_builtin_via_variable(x):
    fns = [torch.sin, torch.cos, torch.Tensor.exp]
    return [f(x) for f in fns]


def k_decorated_function(x):
    def twice(f):
        @functools.wraps(f)
        def wrapper(*a, **k):
            return f(f(*a, **k))
        return wrapper

    @twice
    def inc(t):
        return t + 1

    return inc(x), inc.__name__


def k_lru_cache_free_helper(x):
    return _affine(_affine(_affine(x, 1), 2), 3)


def k_dict_of_functions(x):
    table = {"a": lambda t: t + 1, "b": _affine}
    return table["a"](x), table["b"](x, 2)


def k_call_with_unpacked_dict_of_tensors(x):
    params = {"scale": x, "shift": x.sum()}
    return _affine(x, **params)


def k_function_attributes(x):
    return x + 1, _affine.__name__, k_function_attributes.__name__


CALLS = [k_user_fn, k_default_and_kw, k_kwonly, k_star_args_call, k_varargs_fn, k_multi_return, k_higher_order,
         k_nested_function, k_closure_read, k_closure_nonlocal, k_closure_factory, k_closure_late_binding, k_lambda,
         k_partial, k_recursion_int, k_recursion_structure, k_generator_sum, k_generator_list, k_generator_next,
         k_generator_zip, k_builtin_via_variable, k_decorated_function, k_lru_cache_free_helper,
         k_dict_of_functions, k_call_with_unpacked_dict_of_tensors, k_function_attributes]


@pytest.mark.parametrize("fn", CALLS, ids=ids)
def test_calls(fn):
    check(fn, *tensors_like((3, 4)))


# --------------------------------------------------------------------------- compiled functions with rich signatures
def sig_defaults(x, scale=2.0, *, shift=1):
    return x * scale + shift


def sig_varargs(x, *rest, **opts):
    y = x
    for r in rest:
        y = y + r
    return y * opts.get("scale", 1.0), len(rest), sorted(opts)


def test_signature_defaults():
    (x,) = tensors_like((3, 4))
    check(sig_defaults, x)


def test_signature_kwargs_passed():
    (x,) = tensors_like((3, 4))
    check(sig_defaults, x, 3.0, kwargs={"shift": 2})


def test_signature_varargs():
    x, y, z = tensors_like((3, 4), (3, 4), (3, 4))
    check(sig_varargs, x, y, z, kwargs={"scale": 0.5, "tag": "t"})


def sig_function_arg(x, fn):
    return fn(x) + 1


def test_function_as_argument():
    (x,) = tensors_like((3, 4))
    check(sig_function_arg, x, torch.sigmoid)


_GLOBAL_PARTIAL = functools.partial(_affine, scale=3.0, shift=-1.0)


def sig_global_partial(x):
    return sig_function_arg(x, _GLOBAL_PARTIAL)


def test_global_partial_passed_on():
    (x,) = tensors_like((3, 4))
    check(sig_global_partial, x)
