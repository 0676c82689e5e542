"""bytegraph demo: compile a real transformers model, show what was captured, time it.

Builds GPT-2 from a small random config (no download), compiles it with
bytegraph (inductor backend by default), checks the outputs and gradients
against eager, prints the captured graph's summary and the per-call time of
eager vs compiled.

    python examples/demo.py [--backend eager|inductor|aten] [--layers N]
"""
import argparse
import collections
import copy
import time

import torch
import transformers

import bytegraph


def build(layers):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=1000, n_positions=128, n_embd=128, n_layer=layers,
                                  n_head=4, use_cache=False, attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 1000, (2, 64), generator=torch.Generator().manual_seed(0))
    return model, ids


def per_call_ms(fn, reps=20):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    model, ids = build(args.layers)
    print(f"model: GPT2LMHeadModel, {args.layers} layers, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; input {tuple(ids.shape)}")

    compiled = bytegraph.compile(copy.deepcopy(model), backend=args.backend, fullgraph=True)
    t0 = time.perf_counter()
    out = compiled(input_ids=ids)
    first = time.perf_counter() - t0
    ref = model(input_ids=ids)
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-4, rtol=1e-4)

    rec = [r for r in bytegraph.compile_metrics if r.ok][-1]
    ops = collections.Counter(getattr(n.target, "__name__", str(n.target))
                              for n in rec.graph.graph.nodes if n.op in ("call_function", "call_method"))
    print(f"\ncaptured: {bytegraph.counters['stats']['unique_graphs']} graph, {rec.ops} ops, "
          f"{rec.guards} guards, graph breaks: {sum(bytegraph.counters['graph_break'].values())}")
    print(f"  trace {rec.trace_s * 1e3:.0f} ms + backend '{args.backend}' {rec.backend_s * 1e3:.0f} ms "
          f"(first call {first:.2f} s)")
    print("  most common ops: " + ", ".join(f"{k} x{v}" for k, v in ops.most_common(8)))

    # training: gradients through the compiled model match eager
    model.zero_grad()
    compiled.zero_grad()
    ref.logits.sum().backward()
    compiled(input_ids=ids).logits.sum().backward()
    worst = max(((p.grad - q.grad).abs().max() / p.grad.abs().max().clamp_min(1e-12)).item()
                for p, q in zip(model.parameters(), compiled.parameters()))
    print(f"  gradients match eager (largest relative difference per parameter: {worst:.1e})")

    with torch.no_grad():
        e = per_call_ms(lambda: model(input_ids=ids))
        c = per_call_ms(lambda: compiled(input_ids=ids))
    print(f"\nper call (no_grad, median of 20): eager {e:.2f} ms, bytegraph[{args.backend}] {c:.2f} ms "
          f"-> {e / c:.2f}x")
    print(f"recompiles: {bytegraph.counters['recompiles']['total']} "
          f"(the no_grad calls add one entry: grad mode is guarded)")


if __name__ == "__main__":
    main()
