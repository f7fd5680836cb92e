"""The checked, resolved form of a space: what every later stage (graph, shapes, codegen, cost) reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .blocks import DEFAULT_NORM, ModuleWidths, is_multi_hot

DEFAULT_KEEP = 0.8
DEFAULT_BOTTLENECK = 256


@dataclass(frozen=True)
class InputSpec:
    name: str
    kind: str  # "dense" (B×S) or "embed" (B×N×D)
    width: int = 0  # S for dense
    count: int = 0  # N for embed
    dim: int = 0  # D for embed


@dataclass(frozen=True)
class ChoiceSpec:
    name: str
    index: int  # declaration order; distances count in it
    blocks: tuple[str, ...]
    candidates: tuple[str, ...]
    distances: dict  # candidate name -> distance (None for raw inputs)
    dims: dict  # block -> tuple of dim options (ascending), dim blocks only
    fixed_inputs: bool = False
    fixed_pairs: Optional[tuple[tuple[str, str], ...]] = None  # a gating/sum block's frozen pair set

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Every (left, right) pair a gating/sum block of this choice may read: the frozen set, else all K²."""
        if self.fixed_pairs is not None:
            return self.fixed_pairs
        return tuple((i, j) for i in self.candidates for j in self.candidates)

    @property
    def multi_hot_blocks(self) -> tuple[str, ...]:
        return tuple(b for b in self.blocks if is_multi_hot(b))

    @property
    def pair_blocks(self) -> tuple[str, ...]:
        return tuple(b for b in self.blocks if not is_multi_hot(b))


@dataclass
class SpaceSpec:
    name: str
    dense: InputSpec
    embed: InputSpec
    choices: list[ChoiceSpec]  # topological order
    outputs: tuple[str, ...]
    keep: float = DEFAULT_KEEP
    bottleneck: int = DEFAULT_BOTTLENECK
    baseline_name: Optional[str] = None
    baseline: Optional[dict] = None  # arch "choices" mapping, checked against the space
    path: str = "<input>"
    choice_by_name: dict = field(default_factory=dict)
    spans: dict = field(default_factory=dict, compare=False, repr=False)  # name -> its Span in the source
    norm: str = DEFAULT_NORM  # what follows every block before its ReLU: "layer" (LayerNorm) or "none"
    modules: ModuleWidths = field(default_factory=ModuleWidths)  # the DHEN modules' fixed widths

    def __post_init__(self):
        self.choice_by_name = {c.name: c for c in self.choices}

    @property
    def inputs(self) -> tuple[InputSpec, InputSpec]:
        return (self.dense, self.embed)

    @property
    def embed_dim(self) -> int:
        return self.embed.dim


def spec_to_dict(spec: SpaceSpec) -> dict:
    """A JSON-ready description of the space, enough to rebuild it without the `.rks` source."""
    return {
        "name": spec.name,
        "dense": {"name": spec.dense.name, "width": spec.dense.width},
        "embed": {"name": spec.embed.name, "count": spec.embed.count, "dim": spec.embed.dim},
        "keep": spec.keep,
        "bottleneck": spec.bottleneck,
        "norm": spec.norm,
        "modules": {"kernel": spec.modules.kernel, "rank": spec.modules.rank, "ffn": spec.modules.ffn},
        "outputs": list(spec.outputs),
        "baseline_name": spec.baseline_name,
        "baseline": spec.baseline,
        "choices": [
            {
                "name": c.name,
                "index": c.index,
                "blocks": list(c.blocks),
                "candidates": list(c.candidates),
                "distances": [c.distances[x] for x in c.candidates],
                "dims": {b: list(v) for b, v in c.dims.items()},
                "fixed_inputs": c.fixed_inputs,
                "fixed_pairs": [list(p) for p in c.fixed_pairs] if c.fixed_pairs is not None else None,
            }
            for c in spec.choices
        ],
    }


def spec_from_dict(data: dict) -> SpaceSpec:
    choices = [
        ChoiceSpec(
            c["name"],
            c["index"],
            tuple(c["blocks"]),
            tuple(c["candidates"]),
            dict(zip(c["candidates"], c["distances"])),
            {b: tuple(v) for b, v in c["dims"].items()},
            c["fixed_inputs"],
            tuple(tuple(p) for p in c["fixed_pairs"]) if c["fixed_pairs"] is not None else None,
        )
        for c in data["choices"]
    ]
    return SpaceSpec(
        data["name"],
        InputSpec(data["dense"]["name"], "dense", width=data["dense"]["width"]),
        InputSpec(data["embed"]["name"], "embed", count=data["embed"]["count"], dim=data["embed"]["dim"]),
        choices,
        tuple(data["outputs"]),
        data["keep"],
        data["bottleneck"],
        data["baseline_name"],
        data["baseline"],
        data["name"],
        norm=data.get("norm", DEFAULT_NORM),
        modules=ModuleWidths(**data.get("modules", {})),
    )
