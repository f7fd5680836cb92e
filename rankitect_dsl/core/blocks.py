"""The blocks of paper 3.1, one definition each: the block registry.

A block owns everything the later stages ask of it: which input adaptor feeds it, whether it emits a 2D or
a 3D tensor and how wide, its parameters (shape axes, initialisation, the path inside its template module),
its FLOPs, its supernet operation and the name of its template class in `codegen_templates/subnet.py.j2`.
Shapes, layout, cost model, supernet and codegen read these entries instead of switching on block names,
so adding a block is one entry here and one template class.

Sizes are plain arithmetic on whatever numbers the caller passes: Python ints for a concrete subnet, sympy
expressions for the cost model. Operations take the tensor functions (`torch.nn.functional`) as `F`, so this
module imports neither torch nor sympy.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

# Parameter shape axes: the searched dim, the block's output width, the linear adaptor's input width,
# the stack adaptor's row count, the embedding dim D; the DHEN modules' l·D (their l rows flattened), N'·l
# (the dot module's products), and the space's fixed module widths (kernel, rank, feed-forward width, one).
DIM, OUT, IN, ROWS, EMBED = "dim", "out", "in", "rows", "embed"
DIM_EMBED, ROWS_DIM, KERNEL, RANK, FFN, ONE = "dim_embed", "rows_dim", "kernel", "rank", "ffn", "one"


@dataclass(frozen=True)
class Role:
    """One parameter of a block: its axes, its init, and its path inside the block's template module."""

    name: str
    axes: tuple[str, ...]
    init: str  # "weight" (uniform by fan-in), "bias" (uniform by the weight's fan-in), "ones", "zeros"
    module_path: str


@dataclass(frozen=True)
class ModuleWidths:
    """The DHEN modules' fixed widths, set once per space (`kernel`, `rank`, `ffn`): the convolution's k×k
    kernel, the cross module's low rank, the attention module's feed-forward width."""

    kernel: int = 3
    rank: int = 8
    ffn: int = 64


@dataclass(frozen=True)
class Sizes:
    """The sizes a block's formulas read; ints for one subnet, sympy expressions in the cost model."""

    dim: object = 0
    linear_in: object = 0
    stack_rows: object = 0
    right_flat: object = 0
    embed_dim: object = 0
    modules: ModuleWidths = ModuleWidths()

    def axis(self, axis: str, out) -> object:
        m = self.modules
        return {
            DIM: self.dim,
            OUT: out,
            IN: self.linear_in,
            ROWS: self.stack_rows,
            EMBED: self.embed_dim,
            DIM_EMBED: self.dim * self.embed_dim,
            ROWS_DIM: self.stack_rows * self.dim,
            KERNEL: m.kernel,
            RANK: m.rank,
            FFN: m.ffn,
            ONE: 1,
        }[axis]


NORMS = ("layer", "none")  # a space's `norm` setting: what follows every block before its ReLU
DEFAULT_NORM = "layer"  # paper 3.1
NORM_ROLES = frozenset(("ln_w", "ln_b"))


def _norm_roles(axis: str) -> tuple[Role, Role]:
    return (Role("ln_w", (axis,), "ones", "norm.weight"), Role("ln_b", (axis,), "zeros", "norm.bias"))


LN_EPS = 1e-5  # nn.LayerNorm's default


def norm_act(F, y, p, mask=None):
    """LayerNorm over the last axis, then the activation: what follows every block. With a feature mask
    (0/1 or soft weights over the maximal width) the statistics are the mask-weighted ones and the output is
    weighed by the mask, so a 0/1 mask normalises exactly the active features, as the subnet does. Without
    LayerNorm parameters in `p` (a `norm none` space) it is the activation alone."""
    if "ln_w" not in p:
        return F.relu(y) if mask is None else F.relu(y) * mask
    if mask is None:
        return F.relu(F.layer_norm(y, (y.shape[-1],), p["ln_w"], p["ln_b"], LN_EPS))
    n = mask.sum(-1, keepdim=True).clamp_min(1e-12)
    centred = y - (y * mask).sum(-1, keepdim=True) / n
    var = (centred * centred * mask).sum(-1, keepdim=True) / n
    return F.relu(centred * (var + LN_EPS).rsqrt() * p["ln_w"] + p["ln_b"]) * mask


def compress(F, x, w, b):
    """A linear over the middle axis of B×N×D, returned as B×D×M (the transpose the dot product needs)."""
    return F.linear(x.transpose(1, 2), w, b)


class Block:
    name: str
    adaptor: str  # "flatten" (concatenate flattened inputs), "stack" (inputs as rows), "pair" (left, right)
    output: str  # "2d" or "3d"
    searched_dim: bool
    template_class: str
    summary: str  # how the export's comments describe it
    definition: str  # what it computes, in one line with its shapes: an editor's hover shows it
    out_shape: str  # its output's shape in words, D the embedding dim
    roles: tuple[Role, ...]
    group: str  # paper 4.2.1: "interaction" (dot_compressed, EmbedFC) or "dense" (linear, gating, sum); "dhen"
    dim_degree = 1  # the highest power of the searched dim in its FLOPs and params

    @property
    def multi_hot(self) -> bool:
        """Reads a multi-hot set of inputs (else a (left, right) pair)."""
        return self.adaptor != "pair"

    def out_size(self, s: Sizes):
        """The 2D output width, or the 3D output's row count."""
        raise NotImplementedError

    def flops(self, s: Sizes):
        """Matmul FLOPs per example of the block itself (adaptors and FC_ij are counted apart)."""
        raise NotImplementedError

    def roles_under(self, norm: str) -> tuple[Role, ...]:
        """The block's parameters in a space whose `norm` setting is `norm`."""
        return self.roles if norm == "layer" else tuple(r for r in self.roles if r.name not in NORM_ROLES)

    def params(self, s: Sizes, norm: str = DEFAULT_NORM):
        out = self.out_size(s)
        total = 0
        for role in self.roles_under(norm):
            n = 1
            for axis in role.axes:
                n = n * s.axis(axis, out)
            total = total + n
        return total

    def shape(self, role: Role, s: Sizes) -> tuple:
        out = self.out_size(s)
        return tuple(s.axis(axis, out) for axis in role.axes)

    def module_args(self, s: Sizes, norm: str = DEFAULT_NORM) -> str:
        """The template class's constructor arguments (a `norm none` template has no LayerNorm widths)."""
        raise NotImplementedError

    def apply(self, F, x, p, masks=None):
        """The block's operation (norm and activation included) on the adaptor's output `x`. Without masks
        `x` and `p` are at the subnet's widths. With masks (at maximal widths; 0/1, soft, per batch or per
        example) it computes the same features at their maximal positions, zero elsewhere: `masks["dim"]`
        weighs the searched dim (leading ones), `masks["rows"]` the stacked input rows, `masks["out"]` the
        output features of a pair block."""
        raise NotImplementedError

    def feature_mask(self, masks):
        """The weight of each output feature (2D) or row (3D) at maximal width, under `masks`."""
        raise NotImplementedError


class Linear(Block):
    name, adaptor, output, searched_dim, group = "linear", "flatten", "2d", True, "dense"
    out_shape = "B×dim"
    template_class, summary = "LinearBlock", "linear"
    definition = "a fully connected layer over the flattened inputs: B×S → B×dim (paper 3.1, dense)"
    roles = (
        Role("w", (DIM, IN), "weight", "linear.weight"),
        Role("b", (DIM,), "bias", "linear.bias"),
        *_norm_roles(DIM),
    )

    def out_size(self, s):
        return s.dim

    def flops(self, s):
        return 2 * s.linear_in * s.dim

    def module_args(self, s, norm=DEFAULT_NORM):
        return f"{s.linear_in}, {s.dim}"

    def apply(self, F, x, p, masks=None):
        return norm_act(F, F.linear(x, p["w"], p["b"]), p, None if masks is None else masks["dim"])

    def feature_mask(self, masks):
        return masks["dim"]


class EmbedFCBlock(Block):
    name, adaptor, output, searched_dim, group = "embed_fc", "stack", "3d", True, "interaction"
    out_shape = "B×dim×D"
    template_class, summary = "EmbedFC", "EmbedFC"
    definition = "a fully connected layer across the stacked rows: B×N×D → B×dim×D (paper 3.1, interaction)"
    roles = (
        Role("w", (DIM, ROWS), "weight", "linear.weight"),
        Role("b", (DIM,), "bias", "linear.bias"),
        *_norm_roles(EMBED),
    )

    def out_size(self, s):
        return s.dim

    def flops(self, s):
        return 2 * s.stack_rows * s.dim * s.embed_dim

    def module_args(self, s, norm=DEFAULT_NORM):
        return f"{s.stack_rows}, {s.dim}" + (f", {s.embed_dim}" if norm == "layer" else "")

    def apply(self, F, x, p, masks=None):
        y = norm_act(F, compress(F, x, p["w"], p["b"]).transpose(1, 2), p)
        return y if masks is None else y * masks["dim"].unsqueeze(-1)

    def feature_mask(self, masks):
        return masks["dim"]


class DotCompressedBlock(Block):
    name, adaptor, output, searched_dim, group = "dot_compressed", "stack", "2d", True, "interaction"
    out_shape = "B×(rows·dim)"
    template_class, summary = "DotCompressed", "compressed dot product"
    definition = (
        "dot products of every input row with dim compressed rows, flatten(X·(W·X)ᵀ): B×N×D → B×(N·dim) "
        "(paper 3.1, interaction)"
    )
    roles = (
        Role("w", (DIM, ROWS), "weight", "compress.weight"),
        Role("b", (DIM,), "bias", "compress.bias"),
        *_norm_roles(OUT),
    )

    def out_size(self, s):
        return s.stack_rows * s.dim

    def flops(self, s):
        return 4 * s.stack_rows * s.dim * s.embed_dim

    def module_args(self, s, norm=DEFAULT_NORM):
        return f"{s.stack_rows}, {s.dim}"

    def apply(self, F, x, p, masks=None):
        z = x.bmm(compress(F, x, p["w"], p["b"])).flatten(1)
        return norm_act(F, z, p, None if masks is None else self.feature_mask(masks))

    def feature_mask(self, masks):
        """Feature (row n, compressed row m) sits at n·M_max + m on every path; a subnet keeps the active
        ones in that order."""
        return (masks["rows"].unsqueeze(-1) * masks["dim"].unsqueeze(-2)).flatten(-2)


class PairBlock(Block):
    """Eq. 2: `interaction(FC_ij(x_i), x_j)`; the shared FC_ij is `PAIR_FC`, outside the block."""

    adaptor, output, searched_dim, group = "pair", "2d", False, "dense"
    out_shape = "B×(its right input's width)"
    roles = _norm_roles(OUT)
    keeps_per_pair = False  # whether backward needs a B×S_j tensor per pair (checkpointing recomputes them)

    def out_size(self, s):
        return s.right_flat

    def flops(self, s):
        return 0

    def module_args(self, s, norm=DEFAULT_NORM):
        return f"{s.right_flat}" if norm == "layer" else ""

    def combine(self, F, fc_i, x_j):
        raise NotImplementedError

    def interactions(self, F, hiddens, ups, weights, x_j, weigh):
        """Σ_k w_k · combine(FC_kj(x_k), x_j) over Eq. 2's pairs sharing the right input x_j, from the pairs'
        bottleneck activations `hiddens` and up-projections `ups` ((weight, bias) each); `weigh(t, w)`
        scales by a per-batch or per-example weight. Each FC_kj(x_k) is consumed as it is made, so what
        stays alive for backward is what the interaction itself needs (the gates of a gating block)."""
        raise NotImplementedError

    def apply(self, F, x, p, masks=None):
        """`x` is the sum of the pairs' interactions (Eq. 2)."""
        return norm_act(F, x, p, None if masks is None else masks["out"])

    def feature_mask(self, masks):
        return masks["out"]


class GatingBlock(PairBlock):
    name, template_class, summary = "gating", "Gating", "pairwise gating"
    definition = "Eq. 2 with gating: Σ sigmoid(FC_ij(x_i)) ∘ x_j over its (left, right) pairs: B×S_j (paper 3.1)"
    keeps_per_pair = True  # each pair's sigmoid

    def combine(self, F, fc_i, x_j):
        return fc_i.sigmoid() * x_j

    def interactions(self, F, hiddens, ups, weights, x_j, weigh):
        gate = sum(weigh(F.linear(h, w, b).sigmoid(), wt) for h, (w, b), wt in zip(hiddens, ups, weights))
        return gate * x_j


class SumBlock(PairBlock):
    name, template_class, summary = "sum", "PairSum", "pairwise sum"
    definition = "Eq. 2 with a sum: Σ FC_ij(x_i) + x_j over its (left, right) pairs: B×S_j (paper 3.1)"

    def combine(self, F, fc_i, x_j):
        return fc_i + x_j

    def interactions(self, F, hiddens, ups, weights, x_j, weigh):
        fc = sum(weigh(F.linear(h, w, b), wt) for h, (w, b), wt in zip(hiddens, ups, weights))
        return fc + weigh(x_j, sum(weights))


class RowInteraction(Block):
    """A DHEN interaction module (Zhang et al. 2022; paper 4.3) over the stacked rows X (B×N×D). X is
    compressed to l rows, H = C·X + c, the layer's projection shortcut; the module's interaction M(H) is added
    to it and the norm and activation follow: Norm(M(H) + H), B×l×D. Concatenating the modules of a layer
    along the rows (the next reader's stack adaptor) is DHEN's ensemble, and the shortcut projection of the
    whole layer, split by the modules' rows, is each module's C. l is the searched dim. On the mask path the
    rows of H past the subnet's l are weighed by the dim mask (zeroed by a hard one) before M reads them, so
    M sees what the subnet's H would be, zero-padded; `interact` must make no other assumption."""

    adaptor, output, searched_dim, group = "stack", "3d", True, "dhen"
    out_shape = "B×dim×D"
    compress_roles = (Role("wc", (DIM, ROWS), "weight", "compress.weight"), Role("bc", (DIM,), "bias", "compress.bias"))
    interaction_roles: tuple = ()

    @property
    def roles(self) -> tuple:
        return (*self.compress_roles, *self.interaction_roles, *_norm_roles(EMBED))

    def out_size(self, s):
        return s.dim

    def flops(self, s):
        return 2 * s.stack_rows * s.dim * s.embed_dim + self.interaction_flops(s)

    def interaction_flops(self, s):
        raise NotImplementedError

    def module_args(self, s, norm=DEFAULT_NORM):
        return f"{s.stack_rows}, {s.dim}, {s.embed_dim}"

    def interact(self, F, x, h, p, mask):
        """M(H): `h` is B×l×D (past the subnet's l weighed by `mask`, (l,) or (B, l), when given), `x` the
        stacked input rows."""
        raise NotImplementedError

    def apply(self, F, x, p, masks=None):
        mask = None if masks is None else masks["dim"]
        h = compress(F, x, p["wc"], p["bc"]).transpose(1, 2)
        if mask is not None:
            h = h * mask.unsqueeze(-1)
        y = norm_act(F, self.interact(F, x, h, p, mask) + h, p)
        return y if mask is None else y * mask.unsqueeze(-1)

    def feature_mask(self, masks):
        return masks["dim"]


class AttentionBlock(RowInteraction):
    """Self-attention: a transformer encoder layer (one head, post-norm, ReLU feed-forward of the space's
    `ffn` width) over the l compressed rows. The products are explicit batched matmuls, which the FLOPs
    counter counts (it counts none for `scaled_dot_product_attention` on the CPU); the l² of the scores
    makes its cost quadratic in the searched dim."""

    name, template_class, summary = "attention", "Attention", "self-attention"
    definition = (
        "DHEN self-attention: a transformer encoder layer over the rows compressed to dim: B×N×D → B×dim×D (4.3)"
    )
    dim_degree = 2
    interaction_roles = (
        *(
            role
            for part, path in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "out"))
            for role in (
                Role("w" + part, (EMBED, EMBED), "weight", f"{path}.weight"),
                Role("b" + part, (EMBED,), "bias", f"{path}.bias"),
            )
        ),
        Role("n1w", (EMBED,), "ones", "norm1.weight"),
        Role("n1b", (EMBED,), "zeros", "norm1.bias"),
        Role("wf", (FFN, EMBED), "weight", "ff1.weight"),
        Role("bf", (FFN,), "bias", "ff1.bias"),
        Role("wg", (EMBED, FFN), "weight", "ff2.weight"),
        Role("bg", (EMBED,), "bias", "ff2.bias"),
        Role("n2w", (EMBED,), "ones", "norm2.weight"),
        Role("n2b", (EMBED,), "zeros", "norm2.bias"),
    )

    def interaction_flops(self, s):
        l, d = s.dim, s.embed_dim
        return 8 * l * d * d + 4 * l * l * d + 4 * l * d * s.modules.ffn

    def module_args(self, s, norm=DEFAULT_NORM):
        return f"{s.stack_rows}, {s.dim}, {s.embed_dim}, {s.modules.ffn}"

    def interact(self, F, x, h, p, mask):
        d = h.shape[-1]
        scores = F.linear(h, p["wq"], p["bq"]).bmm(F.linear(h, p["wk"], p["bk"]).transpose(1, 2)) * d**-0.5
        if mask is not None:  # keys past the subnet's l weigh nothing: softmax over Σ m_k e^{s_k}
            scores = scores + mask.log().unsqueeze(-2)
        attended = F.linear(F.softmax(scores, -1).bmm(F.linear(h, p["wv"], p["bv"])), p["wo"], p["bo"])
        a = F.layer_norm(h + attended, (d,), p["n1w"], p["n1b"], LN_EPS)
        fed = F.linear(F.relu(F.linear(a, p["wf"], p["bf"])), p["wg"], p["bg"])
        return F.layer_norm(a + fed, (d,), p["n2w"], p["n2b"], LN_EPS)


class ConvBlock(RowInteraction):
    """Convolution: a k×k 2D convolution (one channel, zero padding k // 2) over the B×1×l×D map of the
    compressed rows. It convolves after the compression, not before: a row-masked input has gaps a
    convolution would read across, while the compressed rows past l are exactly the subnet's zero padding."""

    name, template_class, summary = "conv", "Conv", "convolution"
    definition = "DHEN convolution: a k×k convolution over the rows compressed to dim: B×N×D → B×dim×D (4.3)"
    interaction_roles = (
        Role("wk", (ONE, ONE, KERNEL, KERNEL), "weight", "conv.weight"),
        Role("bk", (ONE,), "bias", "conv.bias"),
    )

    def interaction_flops(self, s):
        return 2 * s.dim * s.embed_dim * s.modules.kernel**2

    def module_args(self, s, norm=DEFAULT_NORM):
        return f"{s.stack_rows}, {s.dim}, {s.embed_dim}, {s.modules.kernel}"

    def interact(self, F, x, h, p, mask):
        k = p["wk"].shape[-1]
        return F.conv2d(h.unsqueeze(1), p["wk"], p["bk"], padding=k // 2).squeeze(1)


class CrossBlock(RowInteraction):
    """DCN-v2 low-rank cross on the flattened rows z = flatten(H): z ∘ (U·Vᵀ·z + b), plus z (the shortcut),
    U and V of the space's `rank`."""

    name, template_class, summary = "cross", "Cross", "low-rank cross"
    definition = "DHEN cross: DCN-v2's low-rank cross on the rows compressed to dim: B×N×D → B×dim×D (4.3)"
    interaction_roles = (
        Role("wd", (RANK, DIM_EMBED), "weight", "down.weight"),
        Role("wu", (DIM_EMBED, RANK), "weight", "up.weight"),
        Role("bu", (DIM_EMBED,), "bias", "up.bias"),
    )

    def interaction_flops(self, s):
        return 4 * s.dim * s.embed_dim * s.modules.rank

    def module_args(self, s, norm=DEFAULT_NORM):
        return f"{s.stack_rows}, {s.dim}, {s.embed_dim}, {s.modules.rank}"

    def interact(self, F, x, h, p, mask):
        z = h.flatten(1)
        return (z * F.linear(F.linear(z, p["wd"]), p["wu"], p["bu"])).reshape(h.shape)


class DotBlock(RowInteraction):
    """Dot products: every input row with every compressed row, X·Hᵀ (N×l), flattened and projected to
    l rows of D. The projection reads N·l features and writes l·D, so its cost is quadratic in l."""

    name, template_class, summary = "dot", "Dot", "dot product"
    definition = "DHEN dot product: every row with dim compressed rows, projected to dim rows: B×N×D → B×dim×D (4.3)"
    dim_degree = 2
    interaction_roles = (
        Role("wp", (DIM_EMBED, ROWS_DIM), "weight", "project.weight"),
        Role("bp", (DIM_EMBED,), "bias", "project.bias"),
    )

    def interaction_flops(self, s):
        return 2 * s.stack_rows * s.dim * s.embed_dim + 2 * s.stack_rows * s.dim * s.dim * s.embed_dim

    def interact(self, F, x, h, p, mask):
        dots = x.bmm(h.transpose(1, 2)).flatten(1)
        return F.linear(dots, p["wp"], p["bp"]).reshape(h.shape)


PAIR_FC_TEMPLATE = "Bottleneck"  # the template class of the pair blocks' FC_ij (`core/adaptors.py`)


ADAPTOR_NAMES = ("flatten", "stack", "pair")  # what `Block.adaptor` names (`core/adaptors.py`)
OUTPUTS = ("2d", "3d")
# What the editor and the export read of every block: refused at registration when missing, not at a hover.
TEXT_FACTS = ("name", "template_class", "summary", "definition", "out_shape", "group")
OPERATIONS = ("out_size", "flops", "module_args", "apply", "feature_mask")


class BlockDefinitionError(TypeError):
    """A block class that lacks what a later stage needs of it."""


def checked(block: Block) -> Block:
    """`block`, once it holds every fact and operation the stages ask of a block."""
    label = f"block `{getattr(block, 'name', type(block).__name__)}`"
    for fact in TEXT_FACTS:
        value = getattr(block, fact, None)
        if not isinstance(value, str) or not value:
            raise BlockDefinitionError(f"{label} has no `{fact}` (a non-empty string; see the Block class)")
    if block.adaptor not in ADAPTOR_NAMES:
        raise BlockDefinitionError(f"{label}: `adaptor` is one of {', '.join(ADAPTOR_NAMES)}, got {block.adaptor!r}")
    if block.output not in OUTPUTS:
        raise BlockDefinitionError(f"{label}: `output` is 2d or 3d, got {block.output!r}")
    if not isinstance(getattr(block, "searched_dim", None), bool):
        raise BlockDefinitionError(f"{label} has no `searched_dim` (True or False)")
    if not isinstance(getattr(block, "roles", None), tuple) or not all(isinstance(r, Role) for r in block.roles):
        raise BlockDefinitionError(f"{label} has no `roles` (a tuple of Role)")
    for op in OPERATIONS:
        if getattr(type(block), op) is getattr(Block, op):
            raise BlockDefinitionError(f"{label} does not define `{op}`")
    return block


REGISTRY: dict[str, Block] = {
    b.name: checked(b)
    for b in (
        Linear(),
        EmbedFCBlock(),
        DotCompressedBlock(),
        GatingBlock(),
        SumBlock(),
        AttentionBlock(),
        ConvBlock(),
        CrossBlock(),
        DotBlock(),
    )
}
BLOCK_NAMES: tuple[str, ...] = tuple(REGISTRY)
# `blocks all`: the blocks of paper 3.1. The DHEN modules are named where they are meant (paper 4.3).
PAPER_BLOCKS: tuple[str, ...] = tuple(n for n, b in REGISTRY.items() if b.group != "dhen")
TEMPLATE_CLASSES: frozenset = frozenset({b.template_class for b in REGISTRY.values()} | {PAIR_FC_TEMPLATE})


@contextmanager
def registered(new: Block):
    """`new` in the registry for the duration (a test's block, or a plug-in's): checked as the shipped ones
    are; the checker, the cost model, the layout, the supernet and the export read the registry."""
    if new.name in REGISTRY:
        raise BlockDefinitionError(f"block `{new.name}` is already registered")
    REGISTRY[checked(new).name] = new
    try:
        yield new
    finally:
        del REGISTRY[new.name]


def block(name: str) -> Block:
    return REGISTRY[name]


def is_multi_hot(name: str) -> bool:
    return REGISTRY[name].multi_hot


def has_dim(name: str) -> bool:
    return REGISTRY[name].searched_dim


def group_blocks(names) -> tuple[str, ...]:
    """Every block of the 4.2.1 groups that `names` touch, in registry order: a grown choice's blocks. A DHEN
    module stays itself (4.3 searches a DHEN model's dims, not its modules)."""
    groups = {REGISTRY[n].group for n in names} - {"dhen"}
    return tuple(n for n, b in REGISTRY.items() if b.group in groups or (b.group == "dhen" and n in names))


def is_interaction(name: str) -> bool:
    """dot_compressed and EmbedFC: growing copies the choices holding them (paper 4.2.1)."""
    return REGISTRY[name].group == "interaction"


def output_block(names, output: str) -> Optional[str]:
    """The first of `names` whose block emits `output` ("2d" or "3d")."""
    return next((n for n in names if REGISTRY[n].output == output), None)
