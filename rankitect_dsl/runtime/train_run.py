"""`rks train` as one call: start the world, load the data, build the arch's model, train it on every
training row (or `examples`), save it. The command line parses the flags and prints what this returns."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.errors import RksError


@dataclass
class TrainOptions:
    """What `rks train` takes besides the space and the arch (its flags, by name)."""

    data: str
    schema: Optional[str]
    examples: Optional[int]
    min_count: int
    eval_fraction: float
    val_fraction: float
    batch_size: Optional[int]
    lr: float
    seed: int
    embed_optimizer: str
    embed_lr: float
    lr_schedule: str
    device: str
    save: Optional[str]
    json: bool


@dataclass
class TrainedArch:
    metrics: dict  # what `--json` prints and `metrics.json` holds
    result: object  # the engine's TrainResult
    data_name: str
    rows_trained_on: int  # the training rows before the validation slice


def train_arch(space, arch, options: TrainOptions) -> Optional[TrainedArch]:
    """Train `arch` of `space` as `options` say; None on a torchrun rank other than 0, which trains its share
    while rank 0 saves and reports."""
    from ..data.loading import load_data, passes_warning
    from ..data.sources import parse_data_spec
    from ..data.synthetic import SyntheticSource
    from .checkpoints import save_trained
    from .engine import TrainConfig, start, train_final
    from .model import build_model

    world = start(options.device)  # a device this machine lacks is refused before the data loads
    synthetic = isinstance(parse_data_spec(options.data, options.schema), SyntheticSource)
    if options.examples is None and synthetic:
        raise RksError("synthetic data has as many rows as it is asked for: give --examples N")
    data = load_data(
        options.data,
        space,
        options.examples or 1,
        options.schema,
        options.min_count,
        options.eval_fraction,
        options.val_fraction,
    )
    fit = data.validation_view(options.val_fraction)
    examples = options.examples or fit.n_train
    warning = passes_warning(examples, fit, synthetic)
    if warning and world.main:
        print(warning, file=sys.stderr)
    model = build_model(space, arch, fit, options.seed)
    cfg = TrainConfig(
        examples,
        options.batch_size,
        options.lr,
        options.seed,
        not options.json and world.main,
        embed_optimizer=options.embed_optimizer,
        embed_lr=options.embed_lr,
        lr_schedule=options.lr_schedule,
        device=options.device,
    )
    result = train_final(model, data, fit, cfg)
    if not world.main:
        return None
    metrics = {
        "space": space.name,
        "data": data.name,
        **result.to_dict(),
        "flops": space.flops(arch),
        "params": space.params(arch),
    }
    if options.save:
        save_trained(Path(options.save), space.subnet_source(arch), arch.to_json(indent=1), model.state_dict(), metrics)
    return TrainedArch(metrics, result, data.name, fit.n_train)
