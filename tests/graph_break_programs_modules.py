"""Handwritten graph-break programs over nn.Modules: attribute writes on self, ModuleList /
Sequential loops with breaks in the loop or in the submodule forward (depth 1 to 3), buffers
updated in place around a break, disabled functions taking the module, module-level global
writes, autocast / no_grad inside forward, tensor-driven while loops. Parameter gradients are
compared by the harness (every module here has parameters requiring grad)."""
import torch
import torch.nn as nn

import bytegraph
from graph_break_programs import PROGRAM_FILES, disabled, module_program, t

PROGRAM_FILES.add(__file__)

M_CALLS = {"n": 0}


def x24():
    return (t(2, 4, rg=True),)


def _log_into(mod, h):
    mod.log.append(round(float(h.detach().sum()), 3))


dis_log_into = disabled(_log_into)


def _check(flag):
    if flag:
        raise ValueError("flagged")
    return 0


dis_check = disabled(_check)


@module_program(2, "module", "print", inputs=x24)
class ModPrintAttrs(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.calls = 0
        self.history = []

    def forward(self, x):
        self.calls += 1
        y = self.lin(x)
        print("calls", self.calls)
        self.history.append(self.calls)
        return y.relu()


@module_program(4, "modulelist", "print", inputs=x24,
                note="3 layers, one print after each: 3 regions with a linear, then sum")
class ModModuleListPrint(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            print("layer", i)
        return x.sum(-1)


class BranchBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        h = self.lin(x)
        if h.sum() > 0:
            h = h * 2
        return h + x


@module_program(3, "modulelist+submodule", "if_tensor", inputs=x24)
class ModModuleListSubBreak(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([BranchBlock() for _ in range(2)])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.seen = 0

    def forward(self, x):
        y = self.lin(x)
        self.seen += 1
        print("inner")
        return y.tanh()


class Mid(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()

    def forward(self, x):
        return self.inner(x) + 1


@module_program(2, "submodule_d2", "print", inputs=x24)
class ModDepth2(nn.Module):
    def __init__(self):
        super().__init__()
        self.mid = Mid()

    def forward(self, x):
        return self.mid(x * 2) * 3


class L3(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.tag = "l3"

    def forward(self, x):
        h = self.lin(x)
        self.tag = self.tag + "+"
        bytegraph.graph_break()
        return h.sigmoid()


class L2(nn.Module):
    def __init__(self):
        super().__init__()
        self.l3 = L3()
        self.trace = []

    def forward(self, x):
        self.trace.append("in")
        y = self.l3(x - 1)
        self.trace.append("out")
        return y * 2


class L1(nn.Module):
    def __init__(self):
        super().__init__()
        self.l2 = L2()
        self.count = 0

    def forward(self, x):
        self.count += 1
        return self.l2(x.cos()) + self.count


@module_program(2, "submodule_d3", "graph_break", inputs=x24)
class ModDepth3(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = L1()

    def forward(self, x):
        return self.l1(x) - 1


@module_program(2, "module", "print", inputs=x24)
class ModBufferUpdate(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("running", torch.zeros(4))

    def forward(self, x):
        self.running.mul_(0.9).add_(x.detach().mean(0) * 0.1)
        print("updated")
        self.running.add_(1)
        return self.lin(x) - self.running


@module_program(2, "module", "item_arith", inputs=x24)
class ModItemScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.last = None

    def forward(self, x):
        y = self.lin(x)
        s = y.abs().mean().item()
        self.last = round(s, 4)
        return y * s


@module_program(2, "module", "disabled_list", inputs=x24)
class ModDisabledTakesSelf(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.log = []

    def forward(self, x):
        h = self.lin(x)
        dis_log_into(self, h)
        return h * 2


@module_program(2, "module", "print", inputs=x24)
class ModDictOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        out = {"a": self.a(x)}
        print(sorted(out))
        out["b"] = self.b(out["a"])
        return out


class PrintAct(nn.Module):
    def forward(self, x):
        print("act")
        return x.relu()


@module_program(2, "sequential", "print", inputs=x24)
class ModSequentialCustom(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(4, 4), PrintAct(), nn.Linear(4, 3))

    def forward(self, x):
        return self.seq(x)


@module_program(3, "modulelist_zip", "graph_break", inputs=x24)
class ModZipScales(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.scales = [0.5, 2.0]

    def forward(self, x):
        for layer, s in zip(self.layers, self.scales):
            x = layer(x) * s
            bytegraph.graph_break()
        return x.sum()


class PrintBlock(nn.Module):
    def __init__(self, i):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.i = i

    def forward(self, x):
        h = self.lin(x).relu()
        print("block", self.i)
        return x + h


@module_program(4, "modulelist+submodule", "print", inputs=x24,
                note="3 blocks each printing between their linear and the residual add")
class ModCalleeLoopBreak(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([PrintBlock(i) for i in range(3)])

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return x


@module_program(2, "no_grad", "print", inputs=x24)
class ModNoGradStats(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.stats = []

    def forward(self, x):
        y = self.lin(x)
        with torch.no_grad():
            m = y.mean()
            print("stats")
            self.stats.append(m * 2)
        return y * 2


@module_program(2, "try", "disabled_raise", inputs=x24)
class ModTryExcept(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.flag = True
        self.errors = []

    def forward(self, x):
        y = self.lin(x)
        try:
            dis_check(self.flag)
            y = y * 100
        except ValueError as e:
            self.errors.append(str(e))
            y = y - 1
        return y


@module_program(2, "module", "print", inputs=x24, globals_=("M_CALLS",))
class ModGlobalWrite(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        M_CALLS["n"] += 1
        y = self.lin(x)
        print("global", M_CALLS["n"])
        M_CALLS["n"] += 1
        return y * M_CALLS["n"]


@module_program(2, "autocast", "print", inputs=x24)
class ModAutocast(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        with torch.autocast("cpu"):
            h = self.a(x)
            print("autocast", h.dtype)
            o = self.b(h)
        return o.float(), o.dtype


@module_program(3, "while_tensor", "if_tensor", inputs=lambda: (t(2, 4, rg=True, scale=4.0),),
                note="flat counts one region per iteration; the body (linear, mul, norm, gt) runs "
                     "with identical Python state each time -> one graph; entry and exit")
class ModWhileTensor(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        h = x * 1.0
        while h.norm() > 1:
            h = self.lin(h) * 0.5
        return h + 1
