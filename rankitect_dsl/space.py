"""`Space`: the compiled search space every tool and searcher imports."""

from __future__ import annotations

import json
import math
import random
from functools import cached_property
from pathlib import Path
from typing import Sequence

from .core import decisions as D
from .core import limits as L
from .core.adaptors import param_owner
from .core.arch import Arch
from .core.errors import Diagnostic, RksError, Span
from .core.graph import active_choices
from .core.names import choice_part
from .core.spec import SpaceSpec
from .lang.checker import check
from .lang.parser import parse


class Space:
    def __init__(self, spec: SpaceSpec, source: str = ""):
        self.spec = spec
        self.source = source
        self.decisions = D.all_decisions(spec)
        self.size = D.space_size(spec)

    @cached_property
    def graph(self):
        """The lowered DAG (networkx), built on first use: checking a file does not need it."""
        from .core.graph import lower

        return lower(self.spec)

    # -- identity ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def log10_size(self) -> float:
        return D.log10_size(self.size)

    @cached_property
    def baseline(self) -> Arch | None:
        if self.spec.baseline is None:
            return None
        return Arch.from_dict(
            {"space": self.name, "choices": {c.name: self.spec.baseline[c.name] for c in self.spec.choices}}
        )

    # -- archs ------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Size and structure, as `rks stats` prints them."""
        from collections import Counter

        from .core.blocks import REGISTRY

        blocks = Counter(b for c in self.spec.choices for b in c.blocks)
        edges = sum(1 for _, v in self.graph.in_edges() if self.graph.nodes[v]["kind"] == "choice")
        return {
            "space": self.name,
            "choices": len(self.spec.choices),
            "decisions": len(self.decisions),
            "blocks": {b: blocks.get(b, 0) for b in REGISTRY},
            "connections": edges,
            "size": str(self.size),
            "log10_size": self.log10_size,
            "baseline": self.spec.baseline_name,
        }

    def load_arch(self, path) -> Arch:
        """The arch in the JSON file at `path`, checked against this space; an unreadable file is one line."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise RksError(f"cannot read arch file {path}: {err.strerror}") from None
        except UnicodeDecodeError as err:
            raise RksError(f"arch file {path} is not UTF-8 text (byte {err.start}); an arch is a JSON file") from None
        arch = Arch.from_json(text)
        self.validate(arch)
        return arch

    def validate(self, arch: Arch) -> None:
        D.validate(self.spec, arch)

    def sample(self, seed: int = 0) -> Arch:
        return D.sample(self.spec, random.Random(seed))

    def sample_many(self, n: int, seed: int = 0) -> list[Arch]:
        rng = random.Random(seed)
        return [D.sample(self.spec, rng) for _ in range(n)]

    def encode(self, arch: Arch) -> list[int]:
        return D.encode(self.spec, self.decisions, arch)

    def decode(self, vector: Sequence[int]) -> Arch:
        return D.decode(self.spec, self.decisions, vector)

    def active_choices(self, arch: Arch) -> list[str]:
        return active_choices(self.spec, arch)

    def subnet_key(self, arch: Arch) -> str:
        """Equal for archs with the same subnet: they differ only in choices that do not reach the output."""
        return json.dumps({name: arch.choices[name].to_dict() for name in self.active_choices(arch)}, sort_keys=True)

    def relevance(self, vectors):
        """Boolean matrix (archs × decisions): the decisions that shape each flat vector's subnet."""
        import numpy as np

        vectors = np.asarray(vectors, dtype=np.int64).reshape(-1, len(self.decisions))
        return np.array(D.relevance(self.spec, self.decisions, vectors), dtype=bool).reshape(vectors.shape)

    # -- cost model -------------------------------------------------------------------------
    @cached_property
    def cost(self):
        from .compiler.cost import CostModel

        return CostModel(self.spec, self.decisions)

    @property
    def flops_expr(self):
        """FLOPs per example as a sympy expression in the decision indicators."""
        return self.cost.flops_expr

    @property
    def params_expr(self):
        """Dense parameters as a sympy expression in the decision indicators."""
        return self.cost.params_expr

    def merge(self, archs) -> Arch:
        """One arch holding every block, connection and pair of `archs` with the largest dims (paper 4.2.3)."""
        from .core.merge import merge_archs

        return merge_archs(self.spec, list(archs))

    def all_on(self) -> Arch:
        """The whole supernet as one merged arch: every block, candidate input and pair, the largest dims."""
        from .core.arch import ChoiceArch
        from .core.blocks import is_multi_hot

        choices = {
            c.name: ChoiceArch(
                c.blocks,
                c.candidates if any(is_multi_hot(b) for b in c.blocks) else (),
                c.pairs if any(not is_multi_hot(b) for b in c.blocks) else (),
                {b: max(opts) for b, opts in c.dims.items()},
            )
            for c in self.spec.choices
        }
        return Arch(self.name, choices)

    def extended(self, outside, bottleneck=None, header=()) -> "Space":
        """This space admitting the scaled values `outside` (and the new `bottleneck`), as written `.rks`
        (`.source`, with `header` as its leading comment) and loaded back."""
        from .core.scale import extended_spec
        from .lang.writer import spec_source

        source = spec_source(extended_spec(self.spec, outside, bottleneck), list(header))
        return load_source(source, self.path)

    def has_encoding(self, arch: Arch) -> bool:
        """Whether the arch has a flat encoding: one block per choice (merged models, paper 4.2.3, run several)
        and one searched pair per gating/sum block (a set of pairs has none)."""
        return all(
            len(ca.blocks) == 1 and (len(ca.pairs) <= 1 or self.spec.choice_by_name[name].fixed_pairs is not None)
            for name, ca in arch.choices.items()
            if name in self.spec.choice_by_name
        )

    def flops(self, arch: Arch) -> int:
        """FLOPs per example of the arch's subnet (only choices that reach the output count)."""
        if not self._by_formulas(arch):
            return sum(v["flops"] for v in self.cost_breakdown(arch).values())
        return self.cost.evaluate(self.encode(arch))[0]

    def params(self, arch: Arch) -> int:
        """Dense parameters of the arch's subnet (embedding tables excluded)."""
        if not self._by_formulas(arch):
            return sum(v["params"] for v in self.cost_breakdown(arch).values())
        return self.cost.evaluate(self.encode(arch))[1]

    def _by_formulas(self, arch: Arch) -> bool:
        """Whether one arch's costs come from the compiled formulas: when it has a flat encoding and the
        formulas are built. Building them takes most of a second; a command that costs one arch (`rks
        train`, `rks export`) reads its plan instead, which the tests hold equal to the formulas."""
        return "cost" in self.__dict__ and self.has_encoding(arch)

    def cost_breakdown(self, arch: Arch) -> dict:
        """Per choice (and per shared FC_ij, and the head): FLOPs and params. From the formulas when they
        are built and the arch has a flat encoding (unreached parts are 0), else from its plan (reached
        parts only)."""
        if not self._by_formulas(arch):
            from .compiler.plan_cost import plan_cost

            self.validate(arch)
            return plan_cost(self.plan(arch))
        return self.cost.breakdown(self.encode(arch))

    def plan(self, arch: Arch):
        """The subnet plan of an arch: active choices, shapes, weight slices, module names."""
        from .compiler.layout import build_plan

        return build_plan(self.spec, arch, self.layout)

    def flops_many(self, archs):
        """FLOPs of many archs (Arch objects or flat encodings, one per row) in one vectorised call."""
        return self.cost.evaluate_many(self._encodings(archs))[0]

    def params_many(self, archs):
        return self.cost.evaluate_many(self._encodings(archs))[1]

    def _encodings(self, archs):
        archs = list(archs)
        if archs and isinstance(archs[0], Arch):
            return [self.encode(a) for a in archs]
        return archs

    def sampler_probs(self):
        """The sampler's distribution as per-decision probability vectors (float64 tensors): uniform
        blocks, pairs and dims; connection bits on with the keep-probability (before the at-least-one rule)."""
        import torch

        keep = self.spec.keep
        return [
            torch.tensor([1 - keep, keep], dtype=torch.float64)
            if d.kind == "input"
            else torch.full((d.size,), 1.0 / d.size, dtype=torch.float64)
            for d in self.decisions
        ]

    def expected_flops(self, probs):
        """E[FLOPs] under independent decisions with these per-decision probability vectors; differentiable."""
        return self.cost.expected(probs)[0]

    def expected_params(self, probs):
        return self.cost.expected(probs)[1]

    # -- PyTorch ----------------------------------------------------------------------------
    @cached_property
    def layout(self):
        from .compiler.layout import SupernetLayout

        return SupernetLayout(self.spec)

    @cached_property
    def supernet_params(self) -> int:
        """Dense parameters of the all-on supernet, from the layout's shapes (nothing is allocated)."""
        return sum(math.prod(shape) for shape in self.layout.params.values())

    def refuse_oversized(self) -> None:
        """A space whose all-on supernet passes `limits.MAX_SUPERNET_PARAMS` is refused at the choice that
        holds the most of it, before anything is built."""
        if self.supernet_params <= L.MAX_SUPERNET_PARAMS:
            return
        first_user = {}  # a shared pair FC counts at the first choice using it
        for c in reversed(self.spec.choices):
            if c.pair_blocks:
                first_user.update(dict.fromkeys(c.pairs, choice_part(c.name)))
        owner = {}
        for key, shape in self.layout.params.items():
            part = param_owner(key)
            part = first_user[part.names] if part.kind == "pair" else part
            if part.kind == "choice":
                owner[part.names[0]] = owner.get(part.names[0], 0) + math.prod(shape)
        largest = max(owner, key=owner.get)
        message = (
            f"the all-on supernet holds {L.scientific(self.supernet_params)} parameters, more than the ceiling "
            f"of {L.MAX_SUPERNET_PARAMS:,}; choice `{largest}` holds {L.scientific(owner[largest])} of them"
        )
        hint = "lower its dims, its inputs' widths or the bottleneck; the ceilings are in docs/language.md (Limits)"
        raise RksError([Diagnostic(message, self.spec.spans.get(largest), hint)], self.path, self.source)

    def _refuse_beyond_memory(self, params: int, what: str) -> None:
        problem = L.memory_problem(params * L.BYTES_PER_TRAINED_PARAM, f"{what} ({params:,} parameters, trained)")
        if problem:
            raise RksError(f"{problem}; search a smaller space or train on a larger machine", self.path)

    def supernet_source(self) -> str:
        from .compiler.codegen import supernet_source

        return supernet_source(self.spec, self.layout, len(self.decisions), self.size)

    def supernet(self, checkpoint_activations: bool = False):
        """A fresh masked supernet (maximal weights for every block). With `checkpoint_activations` the mask
        path keeps only each choice's outputs for backward and recomputes the rest: memory for compute."""
        from .compiler.codegen import class_name, load_module

        self._refuse_beyond_memory(self.supernet_params, f"the all-on supernet of `{self.name}`")
        module = load_module(self.supernet_source(), f"{self.name}_supernet")
        return getattr(module, class_name(self.name, "Supernet"))(checkpoint_activations=checkpoint_activations)

    def masks(self, arch: Arch, like=None) -> dict:
        """The arch's 0/1 masks in the supernet's mask layout (see `runtime.supernet`), so that
        `net(dense, sparse, masks=space.masks(arch))` runs the arch on the mask path. Tensors take the dtype
        and device of `like` (default float32, CPU)."""
        import torch

        from .runtime.supernet import hard_masks

        return hard_masks(self.spec, arch, like if like is not None else torch.zeros(()))

    def subnet_source(self, arch: Arch) -> str:
        """Readable standalone PyTorch for the arch, its comments carrying the cost model's counts."""
        from .compiler.codegen import subnet_source

        self.validate(arch)
        return subnet_source(self.spec, self.plan(arch), self.cost_breakdown(arch))

    def compile(self, out_dir) -> list:
        """Write the supernet module and the space description into `out_dir`."""
        from .compiler.codegen import compile_space

        return compile_space(self.spec, self.supernet_source(), out_dir)

    def subnet(self, arch: Arch):
        """A fresh standalone subnet for the arch, built from its exported source."""
        from .compiler.codegen import class_name, load_module

        self._refuse_beyond_memory(self.params(arch), f"a subnet of `{self.name}`")
        module = load_module(self.subnet_source(arch), f"{self.name}_subnet")
        return getattr(module, class_name(self.name, "Subnet"))()

    def example_inputs(self, batch: int, seed: int = 0):
        """A (dense, sparse) pair of the shapes the space takes: B×S and B×N×D."""
        import torch

        g = torch.Generator().manual_seed(seed)
        dense = torch.randn(batch, self.spec.dense.width, generator=g)
        sparse = torch.randn(batch, self.spec.embed.count, self.spec.embed.dim, generator=g)
        return dense, sparse


def refuse_large_source(size: int, unit: str, filename: str) -> None:
    if size > L.MAX_SOURCE_BYTES:
        message = f"the file holds {size:,} {unit}; a space file may hold at most {L.MAX_SOURCE_BYTES:,}"
        hint = "write repeated choices as one range, `choice c2 .. c9 { … }`"
        raise RksError([Diagnostic(message, Span(1, 1), hint)], filename)


def load_space(path: str | Path) -> Space:
    """Parse, check and lower a `.rks` file; raises RksError with every diagnostic on bad input."""
    path = Path(path)
    try:
        refuse_large_source(path.stat().st_size, "bytes", str(path))  # before it is read
        source = path.read_text()
    except FileNotFoundError:
        raise RksError(f"no such file: {path}", str(path)) from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as err:
        raise RksError(f"cannot read {path}: {err.__class__.__name__}", str(path)) from None
    return load_source(source, str(path))


def load_source(source: str, filename: str = "<input>") -> Space:
    refuse_large_source(len(source), "characters", filename)
    return check_parsed(parse(source, filename), source, filename)


def check_parsed(module, source: str, filename: str) -> Space:
    """Check a parsed file (the language server keeps the syntax tree for its names)."""
    space = Space(check(module, filename, source), source)
    space.refuse_oversized()
    return space
