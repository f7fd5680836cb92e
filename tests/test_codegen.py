"""Supernet and exported subnets: numerical equivalence, readability contracts, safety, determinism."""

import ast
import py_compile
import re
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SPACES, run_rks, space_path
from rankitect_dsl import Arch, ChoiceArch, RksError, load_source, transfer_back, transfer_weights

N_ARCHS = {"dhen": 10, "tiny": 50, "dlrm": 1, "rankitect": 50, "rankitect_hand": 10, "dhen_dims": 50}


@pytest.fixture(scope="module")
def supernets(spaces):
    torch.manual_seed(0)
    return {n: spaces[n].supernet().double() for n in SPACES}


def _archs(space, name):
    archs = space.sample_many(N_ARCHS[name], seed=11)
    if space.baseline is not None:
        archs.append(space.baseline)
    return archs


@pytest.mark.parametrize("name", SPACES)
def test_supernet_hard_masks_equal_subnet_logits_loss_and_gradients(spaces, supernets, name):
    space, net = spaces[name], supernets[name]
    dense, sparse = (x.double() for x in space.example_inputs(16, seed=3))
    labels = (torch.arange(16) % 3 == 0).double()
    for arch in _archs(space, name):
        sub = space.subnet(arch).double()
        transfer_weights(net, sub, arch)
        net.zero_grad(set_to_none=True)
        a = net(dense, sparse, arch=arch)
        b = sub(dense, sparse)
        assert a.shape == b.shape == (16,)
        assert (a - b).abs().max().item() < 1e-9
        loss_a = F.binary_cross_entropy_with_logits(a, labels)
        loss_b = F.binary_cross_entropy_with_logits(b, labels)
        assert abs(loss_a.item() - loss_b.item()) < 1e-12
        loss_a.backward()
        loss_b.backward()
        expected = {k: p.grad.clone() for k, p in net.weights.items() if p.grad is not None}
        net.zero_grad(set_to_none=True)
        transfer_back(net, sub, arch, grads=True)
        got = {k: p.grad for k, p in net.weights.items() if p.grad is not None}
        assert expected.keys() == got.keys()
        for k in expected:
            assert (expected[k] - got[k]).abs().max().item() < 1e-9, k


def test_transfer_back_writes_weights(spaces):
    space = spaces["tiny"]
    net = space.supernet().double()
    arch = space.sample(4)
    sub = space.subnet(arch).double()
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    transfer_back(net, sub, arch)
    fresh = space.subnet(arch).double()
    transfer_weights(net, fresh, arch)
    for (k, p), (_, q) in zip(sub.named_parameters(), fresh.named_parameters()):
        assert torch.equal(p, q), k


def test_pruned_choices_are_not_in_the_export(spaces):
    space = spaces["rankitect"]
    arch = space.baseline
    source = space.subnet_source(arch)
    active = space.active_choices(arch)
    assert "compress_copy" not in active and "top4" in active  # the grown copy is read by no baseline choice
    assert "self.compress_copy =" not in source and "self.top4 =" in source


def test_all_masks_on_runs_whole_supernet_and_masks_are_differentiable(spaces, supernets):
    space, net = spaces["tiny"], supernets["tiny"]
    dense, sparse = (x.double() for x in space.example_inputs(4, seed=0))
    full = net(dense, sparse)
    assert full.shape == (4,) and torch.isfinite(full).all()
    logits = {d.name: torch.zeros(d.size, dtype=torch.double, requires_grad=True) for d in space.decisions}
    masks = {name: torch.softmax(v, 0) for name, v in logits.items()}
    out = net(dense, sparse, masks=masks)
    out.sum().backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in logits.values())
    # per-example (B × options) masks broadcast too
    batched = {name: torch.softmax(torch.randn(4, len(v), dtype=torch.double), 1) for name, v in logits.items()}
    assert net(dense, sparse, masks=batched).shape == (4,)


def test_one_hot_soft_masks_select_the_arch_blocks(spaces, supernets):
    """With one-hot masks the soft path drops every other block: changing an unused block changes nothing."""
    space, net = spaces["tiny"], supernets["tiny"]
    dense, sparse = (x.double() for x in space.example_inputs(4, seed=0))
    arch = space.baseline
    masks = space.masks(arch, dense)
    before = net(dense, sparse, masks=masks)
    with torch.no_grad():
        net.weights["c1__gating__ln_b"].add_(5.0)
    after = net(dense, sparse, masks=masks)
    with torch.no_grad():
        net.weights["c1__gating__ln_b"].sub_(5.0)
    assert torch.allclose(before, after)


class HandDLRM(nn.Module):
    """dlrm.rks's production model written by hand, without the generator's helper classes."""

    def __init__(self):
        super().__init__()

        def lin(i, o):
            return nn.ModuleDict({"fc": nn.Linear(i, o), "ln": nn.LayerNorm(o)})

        self.bottom1, self.bottom2 = lin(13, 128), lin(128, 128)
        self.compress_w, self.compress_ln = nn.Linear(26, 8), nn.LayerNorm(16)
        self.proj_comp, self.dot_comp_w, self.dot_comp_ln = nn.Linear(128, 16), nn.Linear(9, 8), nn.LayerNorm(72)
        self.proj_raw, self.dot_raw_w, self.dot_raw_ln = nn.Linear(128, 16), nn.Linear(27, 8), nn.LayerNorm(216)
        self.top1 = lin(128 + 72 + 216, 128)
        self.fc_g1 = nn.Sequential(nn.Linear(128, 32), nn.Linear(32, 128))
        self.gate1_ln = nn.LayerNorm(128)
        self.top2 = lin(128, 128)
        self.fc_s1 = nn.Sequential(nn.Linear(128, 32), nn.Linear(32, 128))
        self.skip1_ln = nn.LayerNorm(128)
        self.top3 = lin(128 + 26 * 16, 128)
        self.fc_g2 = nn.Sequential(nn.Linear(128, 32), nn.Linear(32, 128))
        self.gate2_ln = nn.LayerNorm(128)
        self.top4 = lin(128, 128)
        self.head = nn.Linear(128, 1)

    @staticmethod
    def mlp(block, x):
        return torch.relu(block["ln"](block["fc"](x)))

    def forward(self, dense, sparse):
        b1 = self.mlp(self.bottom1, dense)
        b2 = self.mlp(self.bottom2, b1)
        comp = torch.relu(
            self.compress_ln(
                torch.einsum("bnd,mn->bmd", sparse, self.compress_w.weight) + self.compress_w.bias[:, None]
            )
        )
        x = torch.cat([self.proj_comp(b2)[:, None, :], comp], 1)
        e = torch.einsum("bnd,mn->bmd", x, self.dot_comp_w.weight) + self.dot_comp_w.bias[:, None]
        dot_comp = torch.relu(self.dot_comp_ln(torch.einsum("bnd,bmd->bnm", x, e).reshape(len(x), -1)))
        x = torch.cat([self.proj_raw(b2)[:, None, :], sparse], 1)
        e = torch.einsum("bnd,mn->bmd", x, self.dot_raw_w.weight) + self.dot_raw_w.bias[:, None]
        dot_raw = torch.relu(self.dot_raw_ln(torch.einsum("bnd,bmd->bnm", x, e).reshape(len(x), -1)))
        t1 = self.mlp(self.top1, torch.cat([b2, dot_comp, dot_raw], 1))
        g1 = torch.relu(self.gate1_ln(torch.sigmoid(self.fc_g1(b2)) * t1))
        t2 = self.mlp(self.top2, g1)
        s1 = torch.relu(self.skip1_ln(self.fc_s1(t1) + t2))
        t3 = self.mlp(self.top3, torch.cat([s1, sparse.reshape(len(sparse), -1)], 1))
        g2 = torch.relu(self.gate2_ln(torch.sigmoid(self.fc_g2(t3)) * t3))
        t4 = self.mlp(self.top4, g2)
        return self.head(t4)[:, 0]


def test_exported_dlrm_matches_a_hand_written_module(spaces):
    space = spaces["dlrm"]
    sub = space.subnet(space.baseline).double()
    hand = HandDLRM().double()
    sub_params = list(sub.parameters())
    hand_params = list(hand.parameters())
    assert sum(p.numel() for p in sub_params) == sum(p.numel() for p in hand_params)
    order = [
        "bottom1.linear",
        "bottom1.norm",
        "bottom2.linear",
        "bottom2.norm",
        "compress.linear",
        "compress.norm",
        "dot_comp_stack",
        "dot_comp.compress",
        "dot_comp.norm",
        "dot_raw_stack",
        "dot_raw.compress",
        "dot_raw.norm",
        "top1.linear",
        "top1.norm",
        "fc_bottom2_top1.down",
        "fc_bottom2_top1.up",
        "gate1.norm",
        "top2.linear",
        "top2.norm",
        "fc_top1_top2.down",
        "fc_top1_top2.up",
        "skip1.norm",
        "top3.linear",
        "top3.norm",
        "fc_top3_top3.down",
        "fc_top3_top3.up",
        "gate2.norm",
        "top4.linear",
        "top4.norm",
        "head",
    ]
    hand_mods = [
        hand.bottom1["fc"],
        hand.bottom1["ln"],
        hand.bottom2["fc"],
        hand.bottom2["ln"],
        hand.compress_w,
        hand.compress_ln,
        hand.proj_comp,
        hand.dot_comp_w,
        hand.dot_comp_ln,
        hand.proj_raw,
        hand.dot_raw_w,
        hand.dot_raw_ln,
        hand.top1["fc"],
        hand.top1["ln"],
        hand.fc_g1[0],
        hand.fc_g1[1],
        hand.gate1_ln,
        hand.top2["fc"],
        hand.top2["ln"],
        hand.fc_s1[0],
        hand.fc_s1[1],
        hand.skip1_ln,
        hand.top3["fc"],
        hand.top3["ln"],
        hand.fc_g2[0],
        hand.fc_g2[1],
        hand.gate2_ln,
        hand.top4["fc"],
        hand.top4["ln"],
        hand.head,
    ]
    with torch.no_grad():
        for path, mod in zip(order, hand_mods):
            src = sub.get_submodule(path)
            mod.weight.copy_(src.weight)
            mod.bias.copy_(src.bias)
    dense, sparse = (x.double() for x in space.example_inputs(8, seed=5))
    assert (sub(dense, sparse) - hand(dense, sparse)).abs().max().item() < 1e-10


@pytest.mark.parametrize("name", SPACES)
def test_torch_export_on_every_shipped_space(spaces, name):
    space = spaces[name]
    arch = space.baseline or space.sample(0)
    model = space.subnet(arch).eval()
    exported = torch.export.export(model, space.example_inputs(4, seed=0))
    dense, sparse = space.example_inputs(4, seed=1)
    assert torch.allclose(exported.module()(dense, sparse), model(dense, sparse), atol=1e-6)


def test_torch_compile_on_dlrm(spaces):
    space = spaces["dlrm"]
    model = space.subnet(space.baseline).eval()
    compiled = torch.compile(model, backend="eager")
    dense, sparse = space.example_inputs(4, seed=0)
    assert torch.allclose(compiled(dense, sparse), model(dense, sparse), atol=1e-6)


def test_merged_multi_block_choice_exports_and_matches(spaces, supernets):
    space, net = spaces["tiny"], supernets["tiny"]
    choices = dict(space.baseline.choices)
    choices["c1"] = ChoiceArch(("linear", "gating"), ("dense", "sparse"), (("sparse", "dense"),), {"linear": 4})
    choices["c3"] = ChoiceArch(("embed_fc", "dot_compressed"), ("c2", "c1"), (), {"embed_fc": 3, "dot_compressed": 2})
    arch = Arch("tiny", choices)
    space.validate(arch)
    sub = space.subnet(arch).double()
    transfer_weights(net, sub, arch)
    dense, sparse = (x.double() for x in space.example_inputs(8, seed=2))
    assert (net(dense, sparse, arch=arch) - sub(dense, sparse)).abs().max().item() < 1e-9
    assert (net(dense, sparse, masks=space.masks(arch, dense)) - sub(dense, sparse)).abs().max().item() < 1e-9
    source = space.subnet_source(arch)
    assert "pad_sum" in source or "place_at" in source
    assert (
        "torch.cat([c3_dot_compressed, c3_embed_fc.flatten(1)], dim=1)" in source
    )  # a reader takes both outputs, concatenated


@pytest.mark.parametrize("name", SPACES)
def test_export_is_deterministic_compiles_and_imports_only_torch(spaces, name, tmp_path):
    space = spaces[name]
    arch = space.sample(5)
    a, b = space.subnet_source(arch), space.subnet_source(arch)
    assert a == b
    path = tmp_path / "model.py"
    path.write_text(a)
    py_compile.compile(str(path), doraise=True)
    mods = set()
    for node in ast.walk(ast.parse(a)):
        if isinstance(node, ast.Import):
            mods |= {n.name.split(".")[0] for n in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add(node.module.split(".")[0])
    assert mods <= {"torch"} | set(sys.stdlib_module_names)


def test_cli_compile_and_export_are_byte_identical(tmp_path):
    for out in ("a", "b"):
        assert run_rks("compile", space_path("tiny"), "-o", tmp_path / out).returncode == 0
        assert run_rks("export", space_path("tiny"), "--baseline", "-o", tmp_path / out / "model.py").returncode == 0
    for f in ("tiny_supernet.py", "tiny_space.json", "model.py"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert not list(tmp_path.glob("**/*.tmp"))


def test_cli_export_rejects_an_arch_that_does_not_fit(tmp_path):
    bad = tmp_path / "arch.json"
    bad.write_text('{"space": "tiny", "choices": {"c1": {"blocks": ["sum"]}}}')
    proc = run_rks("export", space_path("tiny"), bad, "-o", tmp_path / "m.py")
    assert proc.returncode == 1 and "choices.c1.blocks" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m.py").exists()


HOSTILE = [
    ('choice "x\\nimport os" { blocks linear from dense dim linear 4 }', "unexpected"),
    ("choice __import__ { blocks linear from dense dim linear 4 }", "may not start with `_`"),
    ("choice __class__ { blocks linear from dense dim linear 4 }", "may not start with `_`"),
    ("choice import { blocks linear from dense dim linear 4 }", "keyword"),
    ("choice exec { blocks linear from dense dim linear 4 }", "builtin"),
    ("choice a__b { blocks linear from dense dim linear 4 }", "may not contain `__`"),
    ("choice self { blocks linear from dense dim linear 4 }", "reserved by the generated code"),
    ("choice pad_sum { blocks linear from dense dim linear 4 }", "reserved by the generated code"),
    ("choice place_at { blocks linear from dense dim linear 4 }", "reserved by the generated code"),
    ("choice LinearBlock { blocks linear from dense dim linear 4 }", "reserved by the generated code"),
    ("choice Bottleneck { blocks linear from dense dim linear 4 }", "reserved by the generated code"),
    ("choice x'y { blocks linear from dense dim linear 4 }", "not a valid identifier"),
]


@pytest.mark.parametrize("decl, why", HOSTILE)
def test_hostile_names_are_rejected_before_codegen(decl, why):
    """The file is valid but for the hostile name on line 5 (c1 is a real choice the output reads)."""
    source = (
        "space h\ninput dense : dense[2]\ninput sparse : embed[2, 2]\n"
        f"choice c1 {{ blocks linear from dense dim linear 4 }}\n{decl}\noutput from c1\n"
    )
    load_source(source.replace(decl + "\n", ""))  # the file without the hostile line is fine
    with pytest.raises(RksError) as err:
        load_source(source)
    assert [d.span.line for d in err.value.diagnostics] == [5] and why in err.value.render().lower()


def test_reserved_names_cover_every_name_the_templates_define(spaces):
    """The naming authority's table holds every module-level name a generated subnet or supernet can define
    or import (rendered with every helper on), so no choice can shadow one."""
    from rankitect_dsl.core.names import GENERATED_NAMES

    space = spaces["rankitect_hand"]
    merged = dict(space.baseline.choices)
    r1 = space.spec.choice_by_name["r1"]
    merged["r1"] = ChoiceArch(
        ("linear", "gating", "embed_fc"),
        ("dense", "sparse"),
        (("sparse", "dense"),),
        {"linear": r1.dims["linear"][0], "embed_fc": r1.dims["embed_fc"][0]},
    )
    # r3 sums a linear block with a gating block over r1's 2D and 3D outputs: their features interleave
    r3 = space.spec.choice_by_name["r3"]
    merged["r3"] = ChoiceArch(("linear", "gating"), ("dense",), (("dense", "r1"),), {"linear": r3.dims["linear"][-1]})
    tiny = spaces["tiny"]
    both = dict(tiny.baseline.choices)
    both["c3"] = ChoiceArch(("embed_fc", "dot_compressed"), ("c2", "c1"), (), {"embed_fc": 2, "dot_compressed": 2})
    sources = [
        space.subnet_source(Arch(space.name, merged)),
        space.supernet_source(),
        tiny.subnet_source(Arch("tiny", both)),
    ]
    sources += [spaces[n].subnet_source(a) for n in ("tiny", "dlrm") for a in spaces[n].sample_many(20, seed=3)]
    defined = set()
    for source in sources:
        for node in ast.parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.endswith(("Subnet", "Supernet")):
                defined.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.Assign):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    assert {"pad_sum", "place_at", "LinearBlock", "Gating"} <= defined
    assert defined <= GENERATED_NAMES, defined - GENERATED_NAMES


def test_a_merged_arch_exports_and_runs_whatever_its_choices_are_called(tmp_path):
    """Was: a choice named `pad_sum` passed the checker, and its merged arch exported `pad_sum = pad_sum([...])`,
    which raised UnboundLocalError. Every choice name the checker accepts must export and run."""
    text = open(space_path("tiny")).read()
    for name in ["pad_sum", "place_at", "sum_rows", "logit", "c1_linear", "fc_dense_sparse", "head"]:
        source = re.sub(r"\bc1\b", name, text)
        try:
            space = load_source(source, f"{name}.rks")
        except RksError as err:
            assert "reserved by the generated code" in err.render()
            continue
        d = space.sample(3).to_dict()
        d["choices"][name] = {
            "blocks": ["linear", "gating"],
            "inputs": ["dense", "sparse"],
            "pair": ["dense", "sparse"],
            "dims": {"linear": 8},
        }
        model = space.subnet(Arch.from_dict(d))
        assert model(*space.example_inputs(4)).shape == (4,)


def test_module_attribute_names_never_shadow_nn_module(tmp_path):
    source = (
        "space h\ninput dense : dense[2]\ninput sparse : embed[2, 2]\n"
        "choice train { blocks linear from dense dim linear 4 }\n"
        "choice forward { blocks linear from train dim linear 3 }\n"
        "choice head { blocks linear from forward dim linear 2 }\noutput from head\n"
    )
    space = load_source(source)
    arch = space.sample(0)
    model = space.subnet(arch)
    model.train()  # would fail if `train` had been replaced by a block
    assert model(*space.example_inputs(2)).shape == (2,)
