"""Differential programs: itertools (lazy and infinite iterators), collections (deque, Counter,
OrderedDict, defaultdict, ChainMap), functools / operator helpers, math and builtins over
tensor sizes. One graph each with fullgraph=True; caller-world containers have guard tests."""
import collections
import functools
import heapq
import itertools
import math
import operator

import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, check, compile_fn, reset, tensors_like


def ids(fn):
    return fn.__name__


def beyond_torch_compile(reason):
    """torch.compile cannot be this test's reference (BYTEGRAPH_TEST_REFERENCE=1): it breaks the
    graph (fullgraph=True fails), refuses differently, or returns a different or stale result."""
    return pytest.mark.skipif(REFERENCE, reason=f"torch.compile: {reason}")


# ==================================================================================== itertools
def it_basic(x):
    return (x * len(list(itertools.chain([1], (2, 3)))),
            list(itertools.product(range(2), "ab")),
            list(itertools.product([1, 2], repeat=2)),
            list(itertools.islice(range(10), 2, 8, 2)),
            list(itertools.accumulate([1, 2, 3])),
            list(itertools.accumulate([1, 2, 3], operator.mul, initial=10)),
            list(itertools.starmap(operator.pow, [(2, 3), (3, 2)])),
            list(itertools.zip_longest([1, 2, 3], "ab", fillvalue="-")),
            list(itertools.pairwise("abcd")),
            list(itertools.combinations(range(4), 2)),
            list(itertools.permutations("abc", 2)),
            list(itertools.combinations_with_replacement([1, 2], 2)),
            list(itertools.compress("abcdef", [1, 0, 1, 0, 1])),
            list(itertools.takewhile(lambda v: v < 3, [1, 2, 3, 1])),
            list(itertools.dropwhile(lambda v: v < 3, [1, 2, 3, 1])),
            list(itertools.filterfalse(None, [0, 1, 0, 2])),
            list(itertools.chain.from_iterable(["ab", "cd"])),
            [list(t) for t in itertools.tee([1, 2], 2)])


def it_groupby(x):
    keys = [k for k, _ in itertools.groupby("aabbbcaa")]
    groups = [(k, list(g)) for k, g in itertools.groupby([1, 3, 2, 4, 5], key=lambda v: v % 2)]
    stale = [list(g) for _, g in list(itertools.groupby("aab"))]    # advanced past: empty groups
    return x * len(keys), keys, groups, stale


def it_infinite(x):
    total = 0
    for i, v in zip(itertools.count(1), [10, 20, 30]):
        total += i * v
    for i in itertools.count(5, -2):
        if i < 0:
            break
        total += i
    cyc = list(itertools.islice(itertools.cycle("ab"), 5))
    rep = list(zip(range(3), itertools.repeat("r")))
    halves = list(itertools.takewhile(lambda v: v > 0.1, map(lambda k: 1 / k, itertools.count(1))))
    enum = list(enumerate(itertools.islice(itertools.count(7), 3), start=1))
    return x * total, cyc, rep, len(halves), enum, list(itertools.repeat(x.shape[0], 2))


def it_tensor_rows(x):
    acc = list(itertools.accumulate(x))            # running sums over rows, as graph ops
    pairs = [a - b for a, b in itertools.pairwise(x)]
    return acc, pairs, [r * i for i, r in zip(itertools.count(), x)]


ITER = [pytest.param(it_basic, marks=beyond_torch_compile("graph break")),
        pytest.param(it_groupby, marks=beyond_torch_compile("wrong result: groups read after groupby advanced")),
        it_infinite, it_tensor_rows]


@pytest.mark.parametrize("fn", ITER, ids=ids)
def test_itertools(fn):
    check(fn, *tensors_like((4, 3)))


def make_interleaving():
    log = []

    def gen(n):
        for i in range(n):
            log.append(("gen", i))
            yield i

    def f(x):
        for a, b in zip(itertools.count(), gen(3)):     # lazy: the generator runs as consumed
            log.append(("body", a, b))
            x = x + b
        return x, list(log)
    return f


def test_itertools_consume_generators_lazily():
    x, = tensors_like((3,))
    expected = make_interleaving()(x)
    reset()
    actual = compile_fn(make_interleaving(), backend="eager", fullgraph=True)(x)
    assert_same(expected, actual)


def it_short_circuit(x):
    log = []

    def numbers():
        for i in itertools.count():
            log.append(i)
            yield i
    found = any(v > 2 for v in numbers())              # stops pulling at 3
    pairs = list(zip(numbers(), "ab"))                 # pulls 3 items from the generator
    odd = list(filter(lambda v: v % 2, itertools.islice(numbers(), 5)))
    every = all(log.append(-i) or i < 2 for i in range(5))
    first = next(filter(lambda v: v > 3, numbers()))
    squares = list(map(lambda v: v * v, itertools.takewhile(lambda v: v < 3, numbers())))
    return x + first, found, pairs, odd, every, squares, log


def test_consumers_pull_generators_lazily():
    check(it_short_circuit, *tensors_like((3,)))


def it_consume_infinite(x):
    return x + len(list(itertools.count()))


@beyond_torch_compile("unrolls itertools.count() without end")
def test_consuming_an_infinite_iterator_is_refused():
    reset()
    with pytest.raises(bytegraph.Unsupported):
        compile_fn(it_consume_infinite, backend="eager", fullgraph=True)(torch.ones(2))


# ==================================================================================== collections
def coll_deque(x):
    d = collections.deque([1, 2, 3], maxlen=4)
    d.append(4)
    d.append(5)                   # drops 1 from the left
    d.appendleft(0)               # drops 5 from the right
    d.extend([7])
    d.extendleft([8, 9])
    d.rotate(2)
    left = d.popleft()
    right = d.pop()
    d.extend([4, 4])
    d.remove(4)
    e = collections.deque(x)      # rows of a tensor
    alias = d
    d += [5]                      # in place: `alias` sees it
    d *= 1
    return (x * left + right + len(d), list(alias), d.maxlen, d.index(9), d.count(4), e[0] + e[-1], d,
            9 in d, 42 in d, d == collections.deque(list(d)), bool(collections.deque()))


def coll_counter(x):
    c = collections.Counter("abracadabra")
    c.update(["a", "z"])
    c.update({"b": 3})
    missing = c["nope"]
    d = collections.Counter(a=1, b=5)
    return (x * c["a"], missing, c.most_common(2), sorted(c.elements())[:3], c.total(), d["b"],
            sorted((c + d).items()), len(c), c)


def coll_dicts(x):
    od = collections.OrderedDict([("a", 1), ("b", 2), ("c", 3)])
    od.move_to_end("a")
    od.move_to_end("c", last=False)
    dd = collections.defaultdict(list)
    for k, v in [("p", 1), ("q", 2), ("p", 3)]:
        dd[k].append(v)
    cm = collections.ChainMap({"a": 1}, {"a": 2, "b": 3})
    cm["c"] = 4
    return x * len(od), list(od), od.popitem(last=False), dict(dd), cm["a"], cm["b"], len(cm), sorted(cm), od, dd


COLLECTIONS = [pytest.param(coll_deque, marks=beyond_torch_compile("graph break")),
               pytest.param(coll_counter, marks=beyond_torch_compile("graph break")), coll_dicts]


@pytest.mark.parametrize("fn", COLLECTIONS, ids=ids)
def test_collections(fn):
    check(fn, *tensors_like((3, 2)))


def deque_arg(x, d):
    d.append(x.sum())
    d.appendleft(len(d))
    return x * d[1] + d[-1]


@beyond_torch_compile("returns wrong results for a caller's deque")
def test_caller_deque_mutated_in_place_and_guarded():
    x, = tensors_like((3,))
    check(deque_arg, x, collections.deque([1.0, 2.0], maxlen=3),
          calls=[(x, collections.deque([1.0, 2.0], maxlen=3)),
                 (x, collections.deque([1.0, 2.0, 3.0], maxlen=3)),      # length changes
                 (x, collections.deque([1.0, 2.0], maxlen=5))],          # maxlen changes
          graphs=3)


def test_caller_deque_identity_kept():
    d = collections.deque([1.0], maxlen=3)
    reset()
    c = compile_fn(deque_arg, backend="eager", fullgraph=True)
    x, = tensors_like((3,))
    c(x, d)
    assert isinstance(d, collections.deque) and d.maxlen == 3 and len(d) == 3


# ==================================================================================== functools / operator / heapq
def fn_tools(x):
    add2 = functools.partial(torch.add, alpha=2)
    inner = functools.partial(add2, x)
    shape_prod = functools.reduce(operator.mul, x.shape, 1)
    getter = operator.itemgetter(0, -1)
    attrs = operator.attrgetter("shape", "dtype.is_floating_point")
    summed = operator.methodcaller("sum", dim=0)
    return (inner(x), shape_prod, getter(x.shape), attrs(x), summed(x), operator.index(3),
            operator.mul(x, 2), operator.truediv(x.shape[0], 2), operator.neg(x),
            sorted([(2, "b"), (1, "a")], key=operator.itemgetter(1)),
            heapq.nlargest(2, [3, 1, 4, 1, 5]), heapq.nsmallest(2, [(2, "b"), (1, "z")], key=operator.itemgetter(1)),
            functools.reduce(lambda a, b: a + b, [x, x, x]), inner.keywords, inner.func is add2)


@beyond_torch_compile("graph break (_heapq.heapify)")
def test_functools_operator():
    check(fn_tools, *tensors_like((3, 4)))


def reduce_empty(x):
    return functools.reduce(operator.add, [], ) + x


@beyond_torch_compile("raises its own Unsupported ('Observed exception')")
def test_reduce_of_empty_raises_like_eager():
    with pytest.raises(TypeError):
        compile_fn(reduce_empty, backend="eager", fullgraph=True)(torch.ones(2))


# ==================================================================================== math / builtins over sizes
def sizes_math(x):
    n = math.prod(x.shape)
    d = x.shape[-1]
    return (x / math.sqrt(d) * n, max(*x.shape), max(x.shape), min(x.size()), sum(x.shape),
            sum(x.shape[1:], 10), math.ceil(math.log2(x.size(0))), math.floor(x.numel() / 7),
            math.gcd(*x.shape[:2]), math.isqrt(x.numel()), math.comb(x.shape[0], 2), divmod(x.numel(), 5),
            abs(-x.dim()), pow(2, x.dim()), round(x.numel() / 7, 2), math.pi * d, math.isclose(d / 3, 4 / 3),
            int(math.sqrt(n)), float(d), any(s > 3 for s in x.shape), all(x.shape), sorted(x.shape, reverse=True),
            x.new_zeros(max(x.shape[0] // 2, 1)), math.inf > n, math.fsum([0.1] * 10))


def test_math_and_builtins_over_sizes():
    check(sizes_math, *tensors_like((4, 3, 2)))


def sizes_guarded(x):
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1]) * math.sqrt(x.shape[-1])


def test_sizes_change_recompiles():
    x, = tensors_like((4, 3, 2))
    y, = tensors_like((2, 3, 8))
    check(sizes_guarded, x, calls=[(y,), (x,)], graphs=2)
