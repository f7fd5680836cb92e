"""The cost model: FLOPs per example and dense parameters as sympy formulas over the decision variables.

Every decision of `space.decisions` with n options gets n one-hot indicator symbols. The formulas are
multilinear: no monomial multiplies two indicators of one decision (a choice's own block and dim are
different decisions; a choice's reachability depends only on later choices, its width only on
earlier ones). So one lambdified function serves three uses: Python ints give exact counts,
NumPy columns give 10,000 archs in one call, and torch probabilities give a differentiable cost.

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

from functools import cached_property
from typing import Sequence

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .ir import SpaceSpec

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
        if x not in c.candidates or not c.pair_blocks:
            return ZERO
        if c.fixed_pair:
            return ONE if c.fixed_pair[0 if kind == "left" else 1] == x else ZERO
        if len(c.candidates) == 1:
            return ONE
        return self._sym(c.name, kind, None, c.candidates.index(x))

    def dim(self, c, b):
        opts = c.dims[b]
        if len(opts) == 1:
            return sp.Integer(opts[0])
        return sp.Add(*[o * self._sym(c.name, "dim", b, k) for k, o in enumerate(opts)])

    # -- formulas, as a straight-line program of named intermediates ------------------------
    def let(self, name: str, expr) -> sp.Expr:
        """Bind an intermediate (a width, a reachability) so shared subformulas are computed once."""
        expr = sp.sympify(expr)
        if expr.is_Number or expr.is_Symbol:
            return expr
        sym = sp.Symbol(f"{name}")
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
            stack_rows = self.let(f"stack_rows({c.name})", sp.Add(*[self.on(c, x) * (has2d[x] + rows[x]) for x in c.candidates]))
            lin_in = self.let(f"linear_in({c.name})", sp.Add(*[self.on(c, x) * flat[x] for x in c.candidates]))
            proj_flops = sp.Add(*[self.on(c, x) * 2 * w2d[x] * d for x in c.candidates])
            proj_params = sp.Add(*[self.on(c, x) * (w2d[x] * d + has2d[x] * d) for x in c.candidates])
            right_flat = sp.Add(*[self.side(c, j, "right") * flat[j] for j in c.candidates])
            f, p, width = ZERO, ZERO, ZERO
            for b in c.blocks:
                blk = self.blk(c, b)
                if b == "linear":
                    m = self.dim(c, b)
                    f += blk * 2 * lin_in * m
                    p += blk * (lin_in * m + 3 * m)
                    width += blk * m
                elif b == "embed_fc":
                    m = self.dim(c, b)
                    f += blk * (2 * stack_rows * m * d + proj_flops)
                    p += blk * (stack_rows * m + m + 2 * d + proj_params)
                elif b == "dot_compressed":
                    m = self.dim(c, b)
                    f += blk * (4 * stack_rows * m * d + proj_flops)
                    p += blk * (3 * stack_rows * m + m + proj_params)
                    width += blk * stack_rows * m
                else:
                    p += blk * 2 * right_flat
                    width += blk * right_flat
            w2d[c.name] = self.let(f"width2d({c.name})", width)
            rows[c.name] = self.blk(c, "embed_fc") * self.dim(c, "embed_fc") if "embed_fc" in c.blocks else ZERO
            has2d[c.name] = ONE - self.blk(c, "embed_fc")
            flat[c.name] = self.let(f"flat({c.name})", w2d[c.name] + rows[c.name] * d)
            own_flops[c.name], own_params[c.name] = f, p
        reached = self._reachability()
        self.reached = reached
        self.choice_flops = {c.name: reached[c.name] * own_flops[c.name] for c in spec.choices}
        self.choice_params = {c.name: reached[c.name] * own_params[c.name] for c in spec.choices}
        self.pair_flops, self.pair_params = {}, {}
        for (i, j), used in self._pair_use(reached).items():
            key = f"fc_{i}_{j}"
            self.pair_flops[key] = used * (2 * flat[i] * bn + 2 * bn * flat[j])
            self.pair_params[key] = used * (flat[i] * bn + bn + bn * flat[j] + flat[j])
        head_in = sp.Add(*[flat[x] for x in spec.outputs])
        self.head_flops, self.head_params = 2 * head_in, head_in + 1

    def _uses(self, k, c):
        """Whether choice k reads c, as a formula in k's decisions."""
        multi = sp.Add(*[self.blk(k, b) for b in k.multi_hot_blocks]) * self.on(k, c)
        left, right = self.side(k, c, "left"), self.side(k, c, "right")
        pair = sp.Add(*[self.blk(k, b) for b in k.pair_blocks]) * (left + right - left * right)
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
            pairs = [c.fixed_pair] if c.fixed_pair else [(i, j) for i in c.candidates for j in c.candidates]
            for i, j in pairs:
                users.setdefault((i, j), []).append(reached[c.name] * any_pair * self.side(c, i, "left") * self.side(c, j, "right"))
        return {pair: self.let(f"used(fc_{pair[0]}_{pair[1]})", ONE - sp.Mul(*[ONE - u for u in us])) for pair, us in users.items()}

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
        keys = list(self.choice_flops) + list(self.pair_flops) + ["head"]
        exprs = [*self.choice_flops.values(), *self.pair_flops.values(), self.head_flops,
                 *self.choice_params.values(), *self.pair_params.values(), self.head_params]
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
        columns = [(vectors[:, i] == k).astype(np.int64) for i, group in enumerate(self.symbols) for k in range(len(group))]
        flops, params = self._functions(*columns)
        n = len(vectors)
        return np.broadcast_to(np.asarray(flops, dtype=np.int64), (n,)).copy(), np.broadcast_to(np.asarray(params, dtype=np.int64), (n,)).copy()

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
