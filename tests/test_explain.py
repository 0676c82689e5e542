"""bytegraph.explain: graph counts, ops, break reasons and guards for one call."""
import torch

import bytegraph


def test_explain_one_graph():
    def f(x):
        return x.cos() + 1

    out = bytegraph.explain(f)(torch.randn(3))
    assert out.graph_count == 1 and out.graph_break_count == 0
    assert out.ops_per_graph == [["cos", "add"]]
    assert out.out_guards and "Graph Count: 1" in str(out)


def test_explain_reports_break_reason():
    def f(x):
        print("side effect")
        return x + 1

    out = bytegraph.explain(f)(torch.randn(3))
    assert out.graph_count == 1 and out.graph_break_count == 1
    rec = out.break_reasons[0]
    assert "print()" in rec.reason and rec.line == 'print("side effect")'
    assert rec.lineno == f.__code__.co_firstlineno + 1 and rec.hint


def test_logs_name_the_recompile_reason(caplog):
    import logging

    def f(x, n):
        return x * n

    c = bytegraph.compile(f, backend="eager")
    with caplog.at_level(logging.INFO, logger="bytegraph"):
        c(torch.ones(2), 2)
        c(torch.ones(2), 3)
    text = caplog.text
    assert "compiled " in text and "recompiling " in text and "L['n']" in text
