"""Differential programs: tuple, list, dict, OrderedDict, defaultdict, set, frozenset, slice, range, comprehensions."""
import collections

import pytest
import torch

from differential import check, tensors_like


def ids(fn):
    return fn.__name__


# --------------------------------------------------------------------------- tuples
def c_tuple_basic(x):
    t = (x, x * 2, 3)
    return t[0] + t[1] * t[2], t[-1], t[1:], len(t), t + (4,), (1,) * 3


def c_tuple_methods(x):
    t = (1, 2, 2, 3)
    return x * t.count(2), t.index(3), 2 in t, 5 not in t, tuple([1, 2]), tuple(range(3))


def c_tuple_compare_hash(x):
    a, b = (1, 2), (1, 3)
    return x + 1, a < b, a == (1, 2), max(a, b), hash(a) == hash((1, 2))


# --------------------------------------------------------------------------- lists
def c_list_build_index(x):
    xs = [x, x + 1, x + 2]
    return xs[0] + xs[-1], xs[1:], xs[::-1], len(xs)


def c_list_append_extend(x):
    xs = []
    xs.append(x)
    xs.append(x * 2)
    xs.extend([x * 3, x * 4])
    xs += [x * 5]
    return torch.stack(xs).sum(0), len(xs)


def c_list_pop_insert(x):
    xs = [1, 2, 3, 4]
    last = xs.pop()
    first = xs.pop(0)
    xs.insert(1, 10)
    xs.insert(0, x * 2)
    return xs, last, first


def c_list_index_count_remove(x):
    xs = [3, 1, 4, 1, 5]
    xs.remove(4)
    return x * xs.index(5), xs.count(1), xs


def c_list_sort_reverse(x):
    xs = [3, 1, 2]
    xs.sort()
    ys = [3, 1, 2]
    ys.sort(reverse=True)
    zs = ["bb", "a", "ccc"]
    zs.sort(key=len)
    ws = [1, 2, 3]
    ws.reverse()
    return x + xs[0], xs, ys, zs, ws


def c_list_copy_clear(x):
    xs = [x + 1, 1]
    ys = xs.copy()
    ys.append(2)
    zs = list(xs)
    xs.clear()
    return xs, ys, zs


def c_list_setitem_delitem(x):
    xs = [0, 1, 2, 3, 4]
    xs[0] = x.neg()
    xs[1:3] = ["a"]
    del xs[-1]
    return xs


def c_list_mul_concat(x):
    xs = [x] * 3
    ys = xs + [x * 2]
    return sum(ys), len(ys), [0] * 4


def c_list_of_tensors_in_torch(x):
    parts = [x[:, i] for i in range(x.shape[1])]
    return torch.cat(parts), torch.stack(parts, dim=1)


def c_list_membership_consts(x):
    xs = [1, 2, 3]
    return x + (2 in xs), 7 in xs, "a" in ["a", "b"]


def c_nested_list(x):
    grid = [[1, 2], [3, 4]]
    grid[1].append(5)
    return x * grid[1][2], grid, [row[0] for row in grid]


# --------------------------------------------------------------------------- dicts
def c_dict_basic(x):
    d = {"a": x, "b": x * 2}
    d["c"] = x * 3
    return d["a"] + d["c"], len(d), "b" in d, d


def c_dict_get_setdefault(x):
    d = {"a": 1}
    v = d.get("a")
    w = d.get("zz", 10)
    s = d.setdefault("b", 5)
    s2 = d.setdefault("a", 100)
    return x * (v + w + s + s2), d, d.get("q")


def c_dict_iteration(x):
    d = {"a": 1, "b": 2, "c": 3}
    out = x
    for k, v in d.items():
        out = out + v
    return out, list(d.keys()), list(d.values()), [k for k in d]


def c_dict_update_pop(x):
    d = {"a": x, "b": 1}
    d.update({"c": x + 1})
    d.update(e=5)
    p = d.pop("b")
    q = d.pop("missing", None)
    del d["e"]
    return d, p, q


def c_dict_tensor_values(x):
    d = dict(w=x, b=x.sum(0))
    return d["w"] @ d["w"].t() + d["b"].sum(), dict(zip(["p", "q"], [1, 2]))


def c_dict_int_keys(x):
    d = {0: x, 1: x * 2}
    d[2] = d[0] + d[1]
    return d, sorted(d), d.copy()


def c_dict_comprehension(x):
    d = {f"k{i}": x * i for i in range(3)}
    inv = {v: k for k, v in {"a": 1, "b": 2}.items()}
    return d, inv


def c_dict_popitem_clear(x):
    d = {"a": 1, "b": 2}
    k, v = d.popitem()
    e = dict(d)
    d.clear()
    return x + v, k, d, e


def c_ordered_dict(x):
    d = collections.OrderedDict()
    d["z"] = x
    d["a"] = x * 2
    d.move_to_end("z")
    return d, list(d.keys())


def c_defaultdict(x):
    d = collections.defaultdict(list)
    d["a"].append(x)
    d["a"].append(x * 2)
    d["b"].append(x * 3)
    return torch.stack(d["a"]), len(d["b"]), sorted(d.keys())


def c_defaultdict_int(x):
    counts = collections.defaultdict(int)
    for w in ["a", "b", "a", "c", "a"]:
        counts[w] += 1
    return x * counts["a"], dict(counts)


def c_dict_fromkeys_or(x):
    d = dict.fromkeys(["a", "b"], 0)
    e = d | {"c": 1}
    return x.sum(), d, e


# --------------------------------------------------------------------------- sets
def c_set_ops(x):
    s = {1, 2, 3}
    s.add(4)
    s.discard(1)
    t = s.union({10}) | {11}
    u = s.intersection({2, 3, 99}) & {2}
    v = s - {2}
    return x * len(t), t, u, v, 3 in s, s.issubset({2, 3, 4, 5})


def c_frozenset(x):
    f = frozenset([1, 2, 2, 3])
    g = f | frozenset({4})
    return x + len(f), f, g, 2 in f


def c_set_comprehension(x):
    s = {i % 3 for i in range(10)}
    return x * len(s), s, sorted(s)


# --------------------------------------------------------------------------- slices / ranges
def c_slice_object(x):
    s = slice(1, 3)
    xs = [0, 1, 2, 3, 4]
    return x[s], xs[s], s.start, s.stop, s.step


def c_range_ops(x):
    r = range(2, 10, 3)
    return x + len(r), list(r), r[1], list(range(5)[1:3]), list(reversed(range(3)))


# --------------------------------------------------------------------------- comprehensions
def c_list_comprehension(x):
    sq = [i * i for i in range(5) if i % 2 == 0]
    ts = [x * i for i in sq]
    return sum(ts), sq


def c_nested_comprehension(x):
    pairs = [(i, j) for i in range(3) for j in range(i)]
    mat = [[x[i, j] for j in range(2)] for i in range(2)]
    return pairs, torch.stack([torch.stack(r) for r in mat])


def c_generator_into_sum(x):
    return sum(x[i] for i in range(x.shape[0])), sum(i * 2 for i in range(4))


def c_tuple_of_generator(x):
    return tuple(x * i for i in range(3)), tuple(i for i in "abc")


def c_comprehension_closure(x):
    k = 3
    return [x + k * i for i in range(2)]


CONTAINERS = [c_tuple_basic, c_tuple_methods, c_tuple_compare_hash, c_list_build_index,
              c_list_append_extend, c_list_pop_insert, c_list_index_count_remove, c_list_sort_reverse,
              c_list_copy_clear, c_list_setitem_delitem, c_list_mul_concat, c_list_of_tensors_in_torch,
              c_list_membership_consts, c_nested_list, c_dict_basic, c_dict_get_setdefault,
              c_dict_iteration, c_dict_update_pop, c_dict_tensor_values, c_dict_int_keys,
              c_dict_comprehension, c_dict_popitem_clear, c_ordered_dict, c_defaultdict,
              c_defaultdict_int, c_dict_fromkeys_or, c_set_ops, c_frozenset, c_set_comprehension,
              c_slice_object, c_range_ops, c_list_comprehension, c_nested_comprehension,
              c_generator_into_sum, c_tuple_of_generator, c_comprehension_closure]


@pytest.mark.parametrize("fn", CONTAINERS, ids=ids)
def test_containers(fn):
    check(fn, *tensors_like((3, 4)))


# --------------------------------------------------------------------------- containers as inputs
def in_list_of_tensors(xs):
    return sum(xs), len(xs), xs[0] * xs[-1]


def in_dict_of_tensors(d):
    return d["a"] + d["b"], sorted(d.keys())


def in_tuple_nested(t):
    (a, b), c = t
    return a * b + c


def test_list_input():
    check(in_list_of_tensors, list(tensors_like((2, 3), (2, 3), (2, 3))))


def test_dict_input():
    a, b = tensors_like((2, 3), (2, 3))
    check(in_dict_of_tensors, {"b": b, "a": a})


def test_nested_tuple_input():
    a, b, c = tensors_like((2, 3), (2, 3), (2, 3))
    check(in_tuple_nested, ((a, b), c))
