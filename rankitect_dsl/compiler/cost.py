"""The cost model: FLOPs per example and dense parameters as sympy formulas over the decision variables.

Every decision of `space.decisions` with n options gets n one-hot indicator symbols. The formulas are
multilinear: no monomial multiplies two indicators of one decision (a choice's own block and dim are
different decisions; a choice's reachability depends only on later choices, its width only on
earlier ones; a block whose dim enters squared is summed per option, `block_terms`). So one lambdified
function serves three uses: Python ints give exact counts, NumPy columns give 10,000 archs in one call,
and torch probabilities give a differentiable cost.

FLOPs follow `torch.utils.flop_counter.FlopCounterMode` (2·M·N·K per mm/addmm/bmm; LayerNorm,
activations and element-wise ops count 0). Only choices that reach the output count. Embedding
tables are outside the searched part and are not counted.

Expectations: evaluated at probabilities the formula gives the exact expectation under independent
decisions wherever reachability is decided by the space alone (fixed connections). Where connections
are searched, a choice is reached through several consumers whose reachabilities share later
decisions; the formula then treats those events as independent (1 − Π(1 − P(reached via k))), an
approximation whose error `benchmarks/bench_cost.py` measures.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Sequence

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..core.adaptors import HEAD, PAIR_FC, STACK
from ..core.blocks import REGISTRY, Sizes
from ..core.names import HEAD_PART, choice_part, pair_part
from ..core.spec import SpaceSpec

ONE, ZERO = sp.Integer(1), sp.Integer(0)


class CostModel:
    def __init__(self, spec: SpaceSpec, decisions):
        self.spec, self.decisions = spec, decisions
        self.symbols = [[sp.Symbol(f"{d.name}[{k}]") for k in range(d.size)] for d in decisions]
        self._index = {(d.choice, d.kind, d.target): i for i, d in enumerate(decisions)}
        self._build()

    # -- indicators -------------------------------------------------------------------------
    def _sym(self, choice, kind, target, k):
        return self.symbols[self._index[(choice, kind, target)]][k]

    def blk(self, c, b):
        if b not in c.blocks:
            return ZERO
        return ONE if len(c.blocks) == 1 else self._sym(c.name, "block", None, c.blocks.index(b))

    def on(self, c, x):
        if x not in c.candidates or not c.multi_hot_blocks:
            return ZERO
        if c.fixed_inputs or len(c.candidates) == 1:
            return ONE
        return self._sym(c.name, "input", x, 1)

    def side(self, c, x, kind):
        """Whether x is the left (right) input of the choice's one searched pair."""
        if x not in c.candidates or not c.pair_blocks or c.fixed_pairs is not None:
            return ZERO
        if len(c.candidates) == 1:
            return ONE
        return self._sym(c.name, kind, None, c.candidates.index(x))

    def pair_on(self, c, i, j):
        """Whether pair (i, j) is among those the choice's gating/sum block sums."""
        if c.fixed_pairs is not None:
            return ONE if (i, j) in c.fixed_pairs else ZERO
        return self.side(c, i, "left") * self.side(c, j, "right")

    def pair_width(self, c, flat):
        """The gating/sum block's output width: its right input's, or for a frozen set of pairs over the
        raw inputs (the checker allows no other set), the widest right's (their features are leading)."""
        if c.fixed_pairs is not None:
            rights = list(dict.fromkeys(j for _, j in c.fixed_pairs))
            return flat[rights[0]] if len(rights) == 1 else sp.Max(*[flat[j] for j in rights])
        return sp.Add(*[self.side(c, j, "right") * flat[j] for j in c.candidates])

    def dim(self, c, b):
        opts = c.dims[b]
        if len(opts) == 1:
            return sp.Integer(opts[0])
        return sp.Add(*[o * self._sym(c.name, "dim", b, k) for k, o in enumerate(opts)])

    def block_terms(self, c, b, sizes):
        """A block's FLOPs and params. Multilinear in the decisions as the block writes them, unless its dim
        enters squared (attention's l×l scores, the dot module's l·D × N·l projection): then as the sum over
        the dim's options of each option's indicator times that option's cost. That equals the block's
        formula on every concrete arch, and with probabilities for the indicators it is the exact expected
        cost, E[l²] = Σ p_k l_k², where the squared sum of indicators would give E[l]²."""
        block = REGISTRY[b]
        opts = c.dims.get(b, ())
        if block.dim_degree == 1 or len(opts) < 2:
            return block.flops(sizes), block.params(sizes, self.spec.norm)
        flops, params = ZERO, ZERO
        for k, o in enumerate(opts):
            at = replace(sizes, dim=sp.Integer(o))
            ind = self._sym(c.name, "dim", b, k)
            flops += ind * block.flops(at)
            params += ind * block.params(at, self.spec.norm)
        return flops, params

    # -- formulas, as a straight-line program of named intermediates ------------------------
    def let(self, name: str, expr) -> sp.Expr:
        """Bind an intermediate (a width, a reachability) so shared subformulas are computed once. Each
        gets a Dummy symbol: equal names (a readable label, not a key) never make two intermediates one."""
        expr = sp.sympify(expr)
        if expr.is_Number or expr.is_Symbol:
            return expr
        sym = sp.Dummy(name)
        self.steps.append((sym, expr))
        return sym

    def _build(self):
        spec, d, bn = self.spec, self.spec.embed_dim, self.spec.bottleneck
        self.steps: list[tuple[sp.Symbol, sp.Expr]] = []
        w2d = {spec.dense.name: sp.Integer(spec.dense.width), spec.embed.name: ZERO}
        rows = {spec.dense.name: ZERO, spec.embed.name: sp.Integer(spec.embed.count)}
        has2d = {spec.dense.name: ONE, spec.embed.name: ZERO}
        flat = {x: w2d[x] + rows[x] * d for x in w2d}
        own_flops, own_params = {}, {}
        for c in spec.choices:
            stack_rows = self.let(
                f"stack_rows({c.name})", sp.Add(*[self.on(c, x) * (has2d[x] + rows[x]) for x in c.candidates])
            )
            lin_in = self.let(f"linear_in({c.name})", sp.Add(*[self.on(c, x) * flat[x] for x in c.candidates]))
            proj_flops = sp.Add(*[self.on(c, x) * STACK.flops(w2d[x], d) for x in c.candidates])
            proj_params = sp.Add(*[self.on(c, x) * STACK.params(w2d[x], d, has2d[x]) for x in c.candidates])
            right_flat = self.pair_width(c, flat) if c.pair_blocks else ZERO
            f, p, width, rows3d, is3d = ZERO, ZERO, ZERO, ZERO, ZERO
            for b in c.blocks:
                block, blk = REGISTRY[b], self.blk(c, b)
                sizes = Sizes(
                    self.dim(c, b) if block.searched_dim else ZERO, lin_in, stack_rows, right_flat, d, spec.modules
                )
                stacked = block.adaptor == STACK.name
                block_flops, block_params = self.block_terms(c, b, sizes)
                f += blk * (block_flops + (proj_flops if stacked else ZERO))
                p += blk * (block_params + (proj_params if stacked else ZERO))
                if block.output == "3d":
                    rows3d += blk * block.out_size(sizes)
                    is3d += blk
                else:
                    width += blk * block.out_size(sizes)
            w2d[c.name] = self.let(f"width2d({c.name})", width)
            rows[c.name] = rows3d
            has2d[c.name] = ONE - is3d
            flat[c.name] = self.let(f"flat({c.name})", w2d[c.name] + rows[c.name] * d)
            own_flops[c.name], own_params[c.name] = f, p
        reached = self._reachability()
        self.reached = reached
        self.choice_flops = {choice_part(c.name): reached[c.name] * own_flops[c.name] for c in spec.choices}
        self.choice_params = {choice_part(c.name): reached[c.name] * own_params[c.name] for c in spec.choices}
        self.pair_flops, self.pair_params = {}, {}
        for (i, j), used in self._pair_use(reached).items():
            key = pair_part(i, j)
            self.pair_flops[key] = used * PAIR_FC.flops(flat[i], flat[j], bn)
            self.pair_params[key] = used * PAIR_FC.params(flat[i], flat[j], bn)
        head_in = sp.Add(*[flat[x] for x in spec.outputs])
        self.head_flops, self.head_params = HEAD.flops(head_in), HEAD.params(head_in)

    def _uses(self, k, c):
        """Whether choice k reads c, as a formula in k's decisions."""
        multi = sp.Add(*[self.blk(k, b) for b in k.multi_hot_blocks]) * self.on(k, c)
        if k.fixed_pairs is not None:
            read = ONE if any(c in pair for pair in k.fixed_pairs) else ZERO
        else:
            left, right = self.side(k, c, "left"), self.side(k, c, "right")
            read = left + right - left * right
        pair = sp.Add(*[self.blk(k, b) for b in k.pair_blocks]) * read
        return multi + pair

    def _reachability(self) -> dict:
        spec = self.spec
        consumers = {c.name: [] for c in spec.choices}
        for k in spec.choices:
            for x in k.candidates:
                if x in consumers:
                    consumers[x].append(k)
        reached = {}
        for c in reversed(spec.choices):
            if c.name in spec.outputs:
                reached[c.name] = ONE
                continue
            miss = sp.Mul(*[ONE - reached[k.name] * self._uses(k, c.name) for k in consumers[c.name]])
            reached[c.name] = self.let(f"reached({c.name})", ONE - miss)
        return reached

    def _pair_use(self, reached) -> dict:
        users = {}
        for c in self.spec.choices:
            if not c.pair_blocks:
                continue
            any_pair = sp.Add(*[self.blk(c, b) for b in c.pair_blocks])
            for i, j in c.pairs:
                users.setdefault((i, j), []).append(reached[c.name] * any_pair * self.pair_on(c, i, j))
        return {
            pair: self.let(f"used({pair_part(*pair).label})", ONE - sp.Mul(*[ONE - u for u in us]))
            for pair, us in users.items()
        }

    # -- totals -----------------------------------------------------------------------------
    @cached_property
    def _totals(self):
        flops = sp.Add(*self.choice_flops.values(), *self.pair_flops.values(), self.head_flops)
        params = sp.Add(*self.choice_params.values(), *self.pair_params.values(), self.head_params)
        return flops, params

    def expand(self, expr: sp.Expr) -> sp.Expr:
        """Substitute every intermediate: a formula in the decision indicators alone (shared in memory)."""
        if not hasattr(self, "_expanded"):
            self._expanded = {}
            for sym, e in self.steps:
                self._expanded[sym] = e.xreplace(self._expanded)
        return expr.xreplace(self._expanded)

    @cached_property
    def flops_expr(self) -> sp.Expr:
        return self.expand(self._totals[0])

    @cached_property
    def params_expr(self) -> sp.Expr:
        return self.expand(self._totals[1])

    @cached_property
    def _args(self):
        return [s for group in self.symbols for s in group]

    def _compile(self, outputs: list) -> callable:
        """A Python function of the indicator values running the straight-line program; it needs only
        + and *, so it takes ints (exact), NumPy arrays (vectorised) or torch tensors (differentiable)."""
        names = {s: sp.Symbol(f"x{i}") for i, s in enumerate(self._args)}
        names.update({sym: sp.Symbol(f"t{i}") for i, (sym, _) in enumerate(self.steps)})
        printer = _Printer({"order": "none"})
        body = [f"    t{i} = {printer.doprint(e.xreplace(names))}" for i, (_, e) in enumerate(self.steps)]
        result = ", ".join(printer.doprint(o.xreplace(names)) for o in outputs)
        args = ", ".join(f"x{i}" for i in range(len(self._args)))
        source = f"def cost({args}):\n" + "\n".join(body) + f"\n    return ({result},)\n"
        scope = {}
        exec(compile(source, "<cost model>", "exec"), scope)
        return scope["cost"]

    @cached_property
    def _functions(self):
        return self._compile(list(self._totals))

    @cached_property
    def _breakdown(self):
        keys = list(self.choice_flops) + list(self.pair_flops) + [HEAD_PART]
        exprs = [
            *self.choice_flops.values(),
            *self.pair_flops.values(),
            self.head_flops,
            *self.choice_params.values(),
            *self.pair_params.values(),
            self.head_params,
        ]
        return keys, self._compile(exprs)

    def one_hot(self, vector: Sequence[int]) -> list[int]:
        return [int(v == k) for v, group in zip(vector, self.symbols) for k in range(len(group))]

    def evaluate(self, vector: Sequence[int]) -> tuple[int, int]:
        flops, params = self._functions(*self.one_hot(vector))
        return int(flops), int(params)

    def breakdown(self, vector: Sequence[int]) -> dict:
        keys, fn = self._breakdown
        values = [int(v) for v in fn(*self.one_hot(vector))]
        n = len(keys)
        return {k: {"flops": values[i], "params": values[n + i]} for i, k in enumerate(keys)}

    def evaluate_many(self, vectors) -> tuple[np.ndarray, np.ndarray]:
        vectors = list(vectors)
        vectors = np.asarray(vectors, dtype=np.int64).reshape(len(vectors), len(self.decisions))
        columns = [
            (vectors[:, i] == k).astype(np.int64) for i, group in enumerate(self.symbols) for k in range(len(group))
        ]
        flops, params = self._functions(*columns)
        n = len(vectors)
        return np.broadcast_to(np.asarray(flops, dtype=np.int64), (n,)).copy(), np.broadcast_to(
            np.asarray(params, dtype=np.int64), (n,)
        ).copy()

    def expected(self, probs) -> tuple:
        """Expected (flops, params) for per-decision probability vectors (torch tensors keep gradients)."""
        if len(probs) != len(self.decisions):
            raise ValueError(f"expected {len(self.decisions)} probability vectors, got {len(probs)}")
        args = []
        for p, d in zip(probs, self.decisions):
            if p.shape[-1] != d.size:
                raise ValueError(f"{d.name}: expected {d.size} probabilities, got {p.shape[-1]}")
            args.extend(p[..., k] for k in range(d.size))
        return tuple(self._functions(*args))


class _Printer(PythonCodePrinter):
    """Plain arithmetic: integer powers as products, so tensors and int64 arrays stay exact."""

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp.is_Integer and exp > 0:
            return "*".join([f"({self._print(base)})"] * int(exp))
        return super()._print_Pow(expr, rational)
