"""Cost of building a resume function's code object: bytegraph's own assembler
(bytegraph/bytecode/resume.py) against a round trip through the `bytecode` package (PyPI),
the candidate the issue named. The package is not a dependency; this script skips its half
when it is not installed (`pip install bytecode==0.19.1`).

    .venv/bin/python bench/resume_assembler.py
"""
import dis
import timeit

from bytegraph.bytecode.resume import resume_code


def sample(x, ws, log):
    y = x * 2
    for w in ws:
        try:
            y = y @ w
            log.append(float(y.sum()))
        except RuntimeError as e:
            log.append(str(e))
        if len(log) > 3:
            break
    with open("/dev/null") as f:
        f.write(str(len(log)))
    return y, [v * 2 for v in log]


def main():
    code = sample.__code__
    insts = list(dis.get_instructions(code))
    call = next(i for i in insts if i.opname == "CALL" and i.offset > 40)
    after = insts[insts.index(call) + 1].offset
    n = 2000
    own = min(timeit.repeat(lambda: resume_code(code, after, [None, None, None], ("e", "f"), "r"),
                            number=n, repeat=5)) / n
    print(f"own assembler (copy + prologue): {own * 1e6:8.1f} us per resume code object")
    try:
        import bytecode
    except ImportError:
        print("bytecode package not installed: skipped")
        return

    def roundtrip():
        b = bytecode.Bytecode.from_code(code)
        return b.to_code()
    pkg = min(timeit.repeat(roundtrip, number=200, repeat=5)) / 200
    print(f"bytecode {bytecode.__version__} round trip (no edits): {pkg * 1e6:8.1f} us  "
          f"({pkg / own:.0f}x)")


if __name__ == "__main__":
    main()
