"""The CTR models people train in one line (DeepCTR-torch) against our DLRM baseline and searched winners,
on the same preprocessed columns, vocabularies, time-ordered split and NE definition: the peers are fed
our `Dataset`. One ordered pass, batch 256, Adam 1e-3, embeddings 16 (DeepCTR's defaults otherwise);
mean and spread over seeds. Needs the `[bench]` extra (`pip install -e ".[bench]"`) and ../shared/data.

    python benchmarks/bench_peers.py [--sets criteo-8k,avazu-9k,ml-100k] [--seeds 0,1,2]
        [--winner ml-100k=docs/results/x.json@spaces/ml100k_rankitect.rks ...] [--peers DeepFM,DCN | --peers none]
"""

import argparse
import contextlib
import io
import statistics
import sys
import time
import types
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from rankitect_dsl import Arch, load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.runtime.engine import TrainConfig, train
from rankitect_dsl.runtime.metrics import auc, normalized_entropy
from rankitect_dsl.runtime.model import build_model

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SETS = {
    "criteo-8k": ("spaces/dlrm.rks", f"criteo:{DATA}/criteo-8k/train.txt", None),
    "avazu-9k": ("spaces/avazu_dlrm.rks", f"table:{DATA}/avazu-9k", "schemas/avazu-9k.json"),
    "ml-100k": ("spaces/ml100k_dlrm.rks", f"table:{DATA}/ml-100k/ml-100k.inter", "schemas/ml-100k.json"),
}
PEERS = ("LR", "WDL", "DeepFM", "DCN", "xDeepFM", "AutoInt")


def offline_deepctr():
    """DeepCTR-torch asks PyPI for a newer version on import; answer it offline (no network at run time)."""

    def refuse(*args, **kwargs):
        raise OSError("offline")

    sys.modules.setdefault("requests", types.SimpleNamespace(get=refuse, codes=types.SimpleNamespace(ok=200)))
    import deepctr_torch.models as models
    from deepctr_torch.inputs import DenseFeat, SparseFeat

    return models, SparseFeat, DenseFeat


class LogisticRegression(torch.nn.Module):
    """LR on the same columns: a weight per categorical value and per dense feature."""

    def __init__(self, vocab_sizes, n_dense):
        super().__init__()
        self.weights = torch.nn.Embedding(int(sum(vocab_sizes)), 1)
        torch.nn.init.zeros_(self.weights.weight)
        self.register_buffer("offsets", torch.tensor(np.cumsum([0] + list(vocab_sizes[:-1]))))
        self.dense = torch.nn.Linear(n_dense, 1)

    def forward(self, dense, cats):
        return self.weights(cats + self.offsets).sum((1, 2)) + self.dense(dense).squeeze(1)


def ne_auc(probs, labels):
    p = torch.as_tensor(np.clip(probs, 1e-7, 1 - 1e-7), dtype=torch.float64)
    logits = torch.log(p / (1 - p))
    y = torch.as_tensor(labels, dtype=torch.float64)
    return normalized_entropy(logits, y), auc(logits.numpy(), y.numpy())


def run_lr(data, seed):
    torch.manual_seed(seed)
    model = LogisticRegression(data.vocab_sizes, data.n_dense)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dense, cats, labels = (torch.as_tensor(np.array(a)) for a in (data.dense, data.cats, data.labels))
    for a in range(0, data.n_train, 256):
        b = min(a + 256, data.n_train)
        loss = F.binary_cross_entropy_with_logits(model(dense[a:b], cats[a:b]), labels[a:b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        probs = torch.sigmoid(model(dense[data.n_train :], cats[data.n_train :])).numpy()
    return (*ne_auc(probs, np.array(data.labels[data.n_train :])), 2 * data.n_dense)


def run_deepctr(name, data, seed):
    models, SparseFeat, DenseFeat = offline_deepctr()
    torch.manual_seed(seed)
    columns = [SparseFeat(f"c{k}", int(v), embedding_dim=16) for k, v in enumerate(data.vocab_sizes)]
    columns += [DenseFeat(f"d{k}", 1) for k in range(data.n_dense)]
    x = {f"c{k}": np.array(data.cats[:, k]) for k in range(data.n_cat)}
    x.update({f"d{k}": np.array(data.dense[:, k]) for k in range(data.n_dense)})
    head = {k: v[: data.n_train] for k, v in x.items()}
    tail = {k: v[data.n_train :] for k, v in x.items()}
    extra = {"DCN": {"cross_num": 2}, "AutoInt": {"att_layer_num": 3}}.get(name, {})
    model = getattr(models, name)(columns, columns, task="binary", seed=seed, **extra)
    model.compile("adam", "binary_crossentropy")
    with contextlib.redirect_stdout(io.StringIO()):  # DeepCTR prints its device and sample counts
        model.fit(head, np.array(data.labels[: data.n_train]), batch_size=256, epochs=1, shuffle=False, verbose=0)
    probs = model.predict(tail, batch_size=4096).reshape(-1)
    one = torch.as_tensor(np.stack([v[:1] for v in x.values()], 1), dtype=torch.float32)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(one)
    return (*ne_auc(probs, np.array(data.labels[data.n_train :])), counter.get_total_flops())


def run_ours(space, arch, data, seed):
    model = build_model(space, arch, data, seed)
    result = train(model, data, TrainConfig(data.n_train, seed=seed, progress=False))
    return result.eval_ne, result.auc, space.flops(arch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--winner", action="append", default=[], help="SET=ARCH.json@SPACE.rks, a searched winner")
    ap.add_argument("--peers", default=",".join(PEERS), help="the peers to train (`none`: only our models)")
    args = ap.parse_args()
    peers = [] if args.peers == "none" else args.peers.split(",")
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    winners = {}
    for item in args.winner:
        key, rest = item.split("=", 1)
        arch_path, space_path = rest.split("@", 1)
        winners[key] = (arch_path, space_path)
    print(f"{'data':<10} {'model':<24} {'eval NE':>16} {'AUC':>8} {'FLOPs':>10} {'seconds':>8}")
    for key in args.sets.split(","):
        bench_set(key, seeds, winners.get(key), peers)


def bench_set(key, seeds, winner, peers):
    path, spec, schema = SETS[key]
    base_space = load_space(path)
    data = load_data(spec, base_space, 10**9, schema)
    rows = [("LR", partial(run_lr, data))] if "LR" in peers else []
    rows += [(name, partial(run_deepctr, name, data)) for name in peers if name != "LR"]
    rows.append((f"rks {Path(path).stem} baseline", partial(run_ours, base_space, base_space.baseline, data)))
    if winner:
        space = load_space(winner[1])
        arch = Arch.from_json(Path(winner[0]).read_text())
        rows.append((f"rks {Path(winner[1]).stem} winner", partial(run_ours, space, arch, data)))
    for name, run in rows:
        t0 = time.perf_counter()
        results = [run(s) for s in seeds]
        seconds = (time.perf_counter() - t0) / len(seeds)
        nes = [r[0] for r in results]
        print(
            f"{key:<10} {name:<24} {statistics.mean(nes):>9.4f} ±{statistics.pstdev(nes):.4f} "
            f"{statistics.mean(r[1] for r in results):>8.4f} {results[0][2]:>10,} {seconds:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
