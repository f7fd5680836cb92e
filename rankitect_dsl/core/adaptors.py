"""The adaptors: the shared pieces outside the blocks, one object each with everything a consumer asks of it
— its parameters (roles, shapes, keys in the supernet, the slices a subnet takes of them), its FLOPs and
params, its module in the exported source, and its operation (given `F`, so this module imports no torch).
The supernet's hard and mask paths, the layout, the subnet program, the cost formulas, the plan cost and
the choice costs all ask these objects; none rebuilds an adaptor.

- `STACK`: each 2D input B×S → Linear(S → D) → one B×1×D row; 3D inputs' rows pass as they are. One
  projection per (choice, 2D input); every stack block of a choice reads the one stack.
- `FLATTEN`: a node's 2D features, then its 3D rows flattened: what the linear block, the pair FC and the
  head read. No parameters.
- `PAIR_FC`: FC_ij of the pair blocks, S_i → bottleneck → S_j, computed once per pair (i, j) and shared
  by every choice reading it.
- `HEAD`: the final classifier, Linear(·, 1) over the outputs' flattened features.
"""

from __future__ import annotations

from .blocks import PAIR_FC_TEMPLATE, Role
from .names import HEAD_KEY, HEAD_PART, PAIR_KEY, SEPARATOR, Part, choice_part, pair_part


class StackAdaptor:
    name = "stack"
    template_class = "nn.Linear"
    roles = (Role("w", ("embed", "width"), "weight", "weight"), Role("b", ("embed",), "bias", "bias"))

    def key(self, choice: str, source: str, role: str) -> str:
        return SEPARATOR.join((choice, "stack", source, role))

    def tensors(self, store, choice: str, source: str) -> dict:
        """Role → the supernet's parameter for the projection of `source` in `choice`."""
        return {r.name: store[self.key(choice, source, r.name)] for r in self.roles}

    def shapes(self, width: int, d: int) -> dict:
        return {"w": (d, width), "b": (d,)}

    def slices(self, positions2d) -> dict:
        """Each role's ranges (None: whole) in the supernet's parameter, for a subnet input whose 2D
        features sit at `positions2d` of its maximal 2D width."""
        return {"w": (None, positions2d), "b": (None,)}

    def flops(self, width2d, d):
        return 2 * width2d * d

    def params(self, width2d, d, has2d):
        return width2d * d + has2d * d

    def project(self, F, t2, p):
        """One 2D input as one row: B×S → B×1×D."""
        return F.linear(t2, p["w"], p["b"]).unsqueeze(1)

    def module(self, widths: list[int], d: int) -> tuple[str, str]:
        """(class, arguments) of the exported module projecting 2D inputs of `widths`: one `nn.Linear`, or a
        `nn.ModuleList` of them in input order."""
        linears = [f"{width}, {d}" for width in widths]
        if len(linears) == 1:
            return "nn.Linear", linears[0]
        return "nn.ModuleList", "[" + ", ".join(f"nn.Linear({a})" for a in linears) + "]"

    def module_call(self, attr: str, k: int, n: int) -> str:
        """The exported source's projection of the k-th of n 2D inputs."""
        return f"self.{attr}" if n == 1 else f"self.{attr}[{k}]"

    def module_prefix(self, attr: str, k: int, n: int) -> str:
        """The k-th of n projections' path among the subnet's parameters."""
        return attr if n == 1 else f"{attr}.{k}"


class FlattenAdaptor:
    name = "flatten"
    roles = ()

    def view(self, cat, t2, t3):
        """A node's 2D part, then its 3D part flattened (`cat` concatenates along the features)."""
        parts = [t for t in (t2, None if t3 is None else t3.flatten(1)) if t is not None]
        return parts[0] if len(parts) == 1 else cat(parts, 1)

    def source(self, var2d, var3d) -> str:
        """The same view in the exported source, of a node held in `var2d` and/or `var3d` (None: absent)."""
        if var3d is None:
            return var2d
        flat3d = f"{var3d}.flatten(1)"
        return flat3d if var2d is None else f"torch.cat([{var2d}, {flat3d}], dim=1)"


class PairFC:
    name = "pair"
    template_class = PAIR_FC_TEMPLATE
    roles = (
        Role("w1", ("bottleneck", "left"), "weight", "down.weight"),
        Role("b1", ("bottleneck",), "bias", "down.bias"),
        Role("w2", ("right", "bottleneck"), "weight", "up.weight"),
        Role("b2", ("right",), "bias", "up.bias"),
    )

    def key(self, left: str, right: str, role: str) -> str:
        return SEPARATOR.join((PAIR_KEY, left, right, role))

    def tensors(self, store, left: str, right: str) -> dict:
        return {r.name: store[self.key(left, right, r.name)] for r in self.roles}

    def shapes(self, left: int, right: int, bottleneck: int) -> dict:
        return {"w1": (bottleneck, left), "b1": (bottleneck,), "w2": (right, bottleneck), "b2": (right,)}

    def slices(self, left_positions, right_positions) -> dict:
        return {
            "w1": (None, left_positions),
            "b1": (None,),
            "w2": (right_positions, None),
            "b2": (right_positions,),
        }

    def flops(self, left, right, bottleneck):
        return 2 * left * bottleneck + 2 * bottleneck * right

    def params(self, left, right, bottleneck):
        return left * bottleneck + bottleneck + bottleneck * right + right

    def down(self, F, x, p):
        """x_i to the bottleneck: the part every block reading the pair shares."""
        return F.linear(x, p["w1"], p["b1"])

    def up(self, F, hidden, p):
        return F.linear(hidden, p["w2"], p["b2"])

    def apply(self, F, x, p):
        return self.up(F, self.down(F, x, p), p)

    def module_args(self, left: int, right: int, bottleneck: int) -> str:
        return f"{left}, {bottleneck}, {right}"


class Head:
    name = "head"
    template_class = "nn.Linear"
    roles = (Role("w", ("one", "width"), "weight", "weight"), Role("b", ("one",), "bias", "bias"))

    def key(self, role: str) -> str:
        return SEPARATOR.join((HEAD_KEY, role))

    def tensors(self, store) -> dict:
        return {r.name: store[self.key(r.name)] for r in self.roles}

    def shapes(self, width: int) -> dict:
        return {"w": (1, width), "b": (1,)}

    def slices(self, positions) -> dict:
        return {"w": (None, positions), "b": (None,)}

    def flops(self, width):
        return 2 * width

    def params(self, width):
        return width + 1

    def apply(self, F, x, p):
        """One logit per example."""
        return F.linear(x, p["w"], p["b"]).squeeze(-1)

    def module_args(self, width: int) -> str:
        return f"{width}, 1"


STACK, FLATTEN, PAIR_FC, HEAD = StackAdaptor(), FlattenAdaptor(), PairFC(), Head()
INPUT_ADAPTORS = {"stack": STACK, "flatten": FLATTEN}  # a multi-hot block's `adaptor`; a pair block's is PAIR_FC


def param_owner(key: str) -> Part:
    """The cost part a supernet parameter belongs to, read back from its key's shape (`core/names.py`)."""
    parts = key.split(SEPARATOR)
    if len(parts) == 2:
        return HEAD_PART
    if len(parts) == 4 and parts[0] == PAIR_KEY and parts[-1] in {role.name for role in PAIR_FC.roles}:
        return pair_part(parts[1], parts[2])
    return choice_part(parts[0])
