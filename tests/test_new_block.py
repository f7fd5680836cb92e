"""docs/architecture.md's walkthrough "Adding a block", kept honest: a block registered in a temporary
registry is checked, compiled into the supernet, costed and exported like a shipped one, with nothing else
changed; a block that lacks what the editor and the export read is refused when it is registered."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from rankitect_dsl import RksError, load_source
from rankitect_dsl.core.blocks import REGISTRY, BlockDefinitionError, Linear, registered
from rankitect_dsl.runtime.transfer import transfer_weights


class Twin(Linear):
    """A second linear block under its own name (the export's `LinearBlock` template serves it)."""

    name, summary = "twin", "twin linear"
    definition = "a fully connected layer over the flattened inputs, registered by a test: B×S → B×dim"


SPACE = """space twin_space
input dense : dense[4]
input sparse : embed[3, 4]
choice c1 { blocks twin, linear from dense, sparse dim twin 4, 8 dim linear 4 }
choice c2 { blocks twin from c1 dim twin 2, 4 }
output from c2
baseline b {
  c1 = twin(dense, sparse) dim 8
  c2 = twin(c1) dim 4
}
"""


def test_a_registered_block_compiles_costs_and_exports():
    with pytest.raises(RksError, match="unknown block `twin`"):
        load_source(SPACE)
    with registered(Twin()):
        space = load_source(SPACE)
        arch = space.baseline
        supernet, subnet = space.supernet().eval(), space.subnet(arch).eval()
        transfer_weights(supernet, subnet, arch)
        dense, sparse = space.example_inputs(16, seed=1)
        with torch.no_grad():
            assert torch.allclose(supernet(dense, sparse, arch=arch), subnet(dense, sparse), atol=1e-6)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            subnet(*space.example_inputs(1))
        # the cost model's FLOPs and params against the flop counter and numel: (4 + 12)·8·2, 8·4·2, the head 4·2
        assert space.flops(arch) == counter.get_total_flops() == 2 * 16 * 8 + 2 * 8 * 4 + 2 * 4
        assert space.params(arch) == sum(p.numel() for p in subnet.parameters())
        assert "class LinearBlock" in space.subnet_source(arch) and "twin" in space.supernet_source()
    assert "twin" not in REGISTRY


@pytest.mark.parametrize("missing", ["definition", "out_shape", "summary", "template_class"])
def test_a_block_lacking_an_editor_or_export_fact_is_refused_at_registration(missing):
    incomplete = type("Incomplete", (Twin,), {missing: "", "name": "incomplete"})()
    with pytest.raises(BlockDefinitionError, match=f"block `incomplete` has no `{missing}`"):
        with registered(incomplete):
            pass
    assert "incomplete" not in REGISTRY


def test_a_block_without_its_operations_is_refused():
    from rankitect_dsl.core.blocks import Block

    class Bare(Block):
        name, adaptor, output, searched_dim, group = "bare", "flatten", "2d", True, "dense"
        template_class, summary, definition, out_shape, roles = "LinearBlock", "bare", "nothing", "B×dim", ()

    with pytest.raises(BlockDefinitionError, match="block `bare` does not define `out_size`"):
        with registered(Bare()):
            pass
