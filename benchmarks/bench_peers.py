"""The CTR models people train in one line (DeepCTR-torch) against our DLRM baseline and searched winners,
on the same preprocessed columns, vocabularies, time-ordered split and NE definition: the peers are fed
our `Dataset`, multi-valued features (bags) included, as DeepCTR's `VarLenSparseFeat` with the schema's
pooling. criteo-8k and ml-100k also measure their DHEN production model (spaces/dhen.rks,
spaces/ml100k_dhen.rks; paper 4.3). One ordered pass, batch 256, Adam 1e-3, embeddings 16 (DeepCTR's
defaults otherwise); mean and spread over seeds. LR is scikit-learn's, fitted to convergence (L-BFGS) on
the one-hot categoricals, the bags' pooled multi-hot rows and the dense columns. Needs the `[bench]` extra
(`pip install -e ".[bench]"`).

    python benchmarks/bench_peers.py [--sets criteo-8k,avazu-9k,ml-100k] [--seeds 0,1,2]
        [--winner ml-100k=docs/results/x.json@spaces/ml100k_rankitect.rks ...] [--peers DeepFM,DCN | --peers none]
    python benchmarks/bench_peers.py --set adult=table:adult.data --schema adult.json [--space S.rks]
        [--eval-fraction 0.2]

A `--set` without `--space` is measured with a DLRM written for its widths (the shape of
spaces/ml100k_dlrm.rks: bottom MLP, compressed dot products, a top reading everything).
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
from torch.utils.flop_counter import FlopCounterMode

from rankitect_dsl import Arch, load_source, load_space
from rankitect_dsl.data.preprocess import load_dataset
from rankitect_dsl.data.sources import parse_data_spec
from rankitect_dsl.runtime.engine import TrainConfig, train
from rankitect_dsl.runtime.metrics import auc, normalized_entropy
from rankitect_dsl.runtime.model import build_model

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SETS = {
    "criteo-8k": ("spaces/dlrm.rks", f"criteo:{DATA}/criteo-8k/train.txt", None),
    "avazu-9k": ("spaces/avazu_dlrm.rks", f"table:{DATA}/avazu-9k", "schemas/avazu-9k.json"),
    "ml-100k": ("spaces/ml100k_dlrm.rks", f"table:{DATA}/ml-100k/ml-100k.inter", "schemas/ml-100k.json"),
}
# The DHEN production model of each set (paper 4.3), measured beside the DLRM baseline.
DHEN = {"criteo-8k": "spaces/dhen.rks", "ml-100k": "spaces/ml100k_dhen.rks"}
PEERS = ("LR", "WDL", "DeepFM", "DCN", "xDeepFM", "AutoInt")
EMBED_DIM = 16


def dlrm_source(name: str, n_dense: int, n_cat: int) -> str:
    """A production-style DLRM for a table of these widths (what spaces/ml100k_dlrm.rks is for ml-100k)."""
    return f"""space {name}
input dense  : dense[{n_dense}]
input sparse : embed[{n_cat}, {EMBED_DIM}]

bottleneck 32

choice bottom1 {{ blocks linear from dense fixed inputs dim linear 128 }}
choice bottom2 {{ blocks linear from bottom1 fixed inputs dim linear 64 }}
choice dot_raw {{ blocks dot_compressed from bottom2, sparse fixed inputs dim dot_compressed 8 }}
choice top1    {{ blocks linear from dense, sparse, bottom2, dot_raw fixed inputs dim linear 256 }}
choice top2    {{ blocks linear from top1 fixed inputs dim linear 128 }}

output from top2

baseline production {{
  bottom1 = linear(dense) dim 128
  bottom2 = linear(bottom1) dim 64
  dot_raw = dot_compressed(bottom2, sparse) dim 8
  top1    = linear(dense, sparse, bottom2, dot_raw) dim 256
  top2    = linear(top1) dim 128
}}
"""


def offline_deepctr():
    """DeepCTR-torch asks PyPI for a newer version on import; answer it offline (no network at run time)."""

    def refuse(*args, **kwargs):
        raise OSError("offline")

    sys.modules.setdefault("requests", types.SimpleNamespace(get=refuse, codes=types.SimpleNamespace(ok=200)))
    import deepctr_torch.models as models
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

    return models, SparseFeat, DenseFeat, VarLenSparseFeat


def lr_features(data):
    """The rows LR reads, as one sparse matrix: a one-hot column per categorical value, a bag's ids as a row
    pooled like the model pools them (each id 1/len for `mean`, 1 for `sum`), then the dense columns."""
    import scipy.sparse as sp

    n, blocks = data.n, []
    cats = np.array(data.cats)
    for k, size in enumerate(data.vocab_sizes[: cats.shape[1]]):
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), cats[:, k])), shape=(n, size)))
    for bag, size in zip(data.bags, data.vocab_sizes[cats.shape[1] :]):
        offsets, ids = np.asarray(bag.offsets), np.asarray(bag.ids)
        lengths = np.diff(offsets)
        weight = np.repeat(1.0 / np.maximum(lengths, 1) if bag.pooling == "mean" else np.ones(n), lengths)
        blocks.append(sp.csr_matrix((weight, ids, offsets), shape=(n, size)))
    blocks.append(sp.csr_matrix(np.array(data.dense, dtype=np.float64)))
    return sp.hstack(blocks, format="csr")


def ne_auc(probs, labels):
    p = torch.as_tensor(np.clip(probs, 1e-7, 1 - 1e-7), dtype=torch.float64)
    logits = torch.log(p / (1 - p))
    y = torch.as_tensor(labels, dtype=torch.float64)
    return normalized_entropy(logits, y), auc(logits.numpy(), y.numpy())


def run_lr(data, seed):
    """L2-regularised LR (C = 1) fitted by L-BFGS until its gradient vanishes: a convex fit, so the seed
    does not matter and its NE is what a linear model of these columns can reach."""
    from sklearn.linear_model import LogisticRegression

    x, y = lr_features(data), np.array(data.labels)
    model = LogisticRegression(C=1.0, max_iter=5000, tol=1e-8, random_state=seed)
    model.fit(x[: data.n_train], y[: data.n_train])
    probs = model.predict_proba(x[data.n_train :])[:, 1]
    return (*ne_auc(probs, y[data.n_train :]), 2 * x.shape[1])


def run_deepctr(name, data, seed):
    models, SparseFeat, DenseFeat, VarLenSparseFeat = offline_deepctr()
    torch.manual_seed(seed)
    n_plain = data.cats.shape[1]
    columns = [SparseFeat(f"c{k}", int(v), embedding_dim=EMBED_DIM) for k, v in enumerate(data.vocab_sizes[:n_plain])]
    x = {f"c{k}": np.array(data.cats[:, k]) for k in range(n_plain)}
    for k, (bag, size) in enumerate(zip(data.bags, data.vocab_sizes[n_plain:])):
        # DeepCTR masks id 0 out of the pool: ids shift by one, so our padding (-1) is its 0 and our
        # out-of-vocabulary id is pooled as our model pools it
        feat = SparseFeat(f"b{k}", int(size) + 1, embedding_dim=EMBED_DIM)
        columns.append(VarLenSparseFeat(feat, bag.max_len, combiner=bag.pooling))
        x[f"b{k}"] = bag.padded(slice(None)) + 1
    columns += [DenseFeat(f"d{k}", 1) for k in range(data.n_dense)]
    x.update({f"d{k}": np.array(data.dense[:, k]) for k in range(data.n_dense)})
    head = {k: v[: data.n_train] for k, v in x.items()}
    tail = {k: v[data.n_train :] for k, v in x.items()}
    extra = {"DCN": {"cross_num": 2}, "AutoInt": {"att_layer_num": 3}}.get(name, {})
    model = getattr(models, name)(columns, columns, task="binary", seed=seed, **extra)
    model.compile("adam", "binary_crossentropy")
    with contextlib.redirect_stdout(io.StringIO()):  # DeepCTR prints its device and sample counts
        model.fit(head, np.array(data.labels[: data.n_train]), batch_size=256, epochs=1, shuffle=False, verbose=0)
    probs = model.predict(tail, batch_size=4096).reshape(-1)
    one = torch.as_tensor(np.concatenate([v[:1].reshape(1, -1) for v in x.values()], 1), dtype=torch.float32)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(one)
    return (*ne_auc(probs, np.array(data.labels[data.n_train :])), counter.get_total_flops())


def run_ours(space, arch, data, seed):
    model = build_model(space, arch, data, seed)
    result = train(model, data, TrainConfig(data.n_train, seed=seed, progress=False))
    return result.eval_ne, result.auc, space.flops(arch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", help=f"shipped sets to measure (default: {','.join(SETS)}, or none with --set)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=SPEC", help="a set: table:PATH, criteo:PATH")
    ap.add_argument("--schema", help="the schema of the --set tables")
    ap.add_argument("--space", help="our baseline for the --set sets (default: a DLRM written for their widths)")
    ap.add_argument("--eval-fraction", type=float, default=0.2, help="the held-out tail (default 0.2)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--winner", action="append", default=[], help="SET=ARCH.json@SPACE.rks, a searched winner (repeatable)"
    )
    ap.add_argument("--peers", default=",".join(PEERS), help="the peers to train (`none`: only our models)")
    args = ap.parse_args()
    peers = [] if args.peers == "none" else args.peers.split(",")
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    shipped = args.sets.split(",") if args.sets is not None else ([] if args.set else list(SETS))
    if set(shipped) - set(SETS):
        ap.error(f"unknown set(s) {', '.join(sorted(set(shipped) - set(SETS)))}; shipped: {', '.join(SETS)}")
    sets = {key: SETS[key] for key in shipped}
    for item in args.set:
        name, sep, spec = item.partition("=")
        if not sep:
            ap.error(f"--set {item}: write NAME=SPEC, e.g. adult=table:adult.data")
        sets[name] = (args.space, spec, args.schema)
    seeds = [int(s) for s in args.seeds.split(",")]
    winners = {}
    for item in args.winner:
        key, rest = item.split("=", 1)
        arch_path, space_path = rest.split("@", 1)
        winners.setdefault(key, []).append((arch_path, space_path))
    print(f"{'data':<10} {'model':<24} {'eval NE':>16} {'AUC':>8} {'FLOPs':>10} {'seconds':>8}")
    for key, (path, spec, schema) in sets.items():
        bench_set(key, path, spec, schema, args.eval_fraction, seeds, winners.get(key, []), peers)


def bench_set(key, path, spec, schema, eval_fraction, seeds, winners, peers):
    data = load_dataset(parse_data_spec(spec, schema), eval_fraction=eval_fraction)
    if path is None:
        base_space = load_source(dlrm_source(f"{key.replace('-', '_')}_dlrm", data.n_dense, data.n_cat))
        label = "dlrm"
    else:
        base_space, label = load_space(path), Path(path).stem
    data.check_fits(base_space)
    rows = [("LR", partial(run_lr, data))] if "LR" in peers else []
    rows += [(name, partial(run_deepctr, name, data)) for name in peers if name != "LR"]
    rows.append((f"rks {label} baseline", partial(run_ours, base_space, base_space.baseline, data)))
    if key in DHEN:
        dhen = load_space(DHEN[key])
        rows.append((f"rks {dhen.name} baseline", partial(run_ours, dhen, dhen.baseline, data)))
    for arch_path, space_path in winners:
        space = load_space(space_path)
        arch = Arch.from_json(Path(arch_path).read_text())
        rows.append((f"rks {Path(space_path).stem} winner", partial(run_ours, space, arch, data)))
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
