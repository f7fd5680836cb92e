"""`rks study show`: a finished or running study as a person reads it — its settings one per line, the
trials by role, the best candidates (or γ(θ) at each checkpoint of an in-place search) and the result."""

from __future__ import annotations

from collections import Counter

from .study import BASELINE, CANDIDATE, FIT, GAMMA, HALVING, StudyStore

# Shown as their own lines, or not at all.
HIDDEN = ("space_source", "summary", "commands", "train_flags", "local_done_by")


def study_lines(store: StudyStore, top: int = 10) -> list[str]:
    meta = store.meta
    trials = store.trials()
    states = Counter(t.state.name for t in trials)
    lines = [f"study {store.name}: {store.url}"]
    lines += [f"  {key:<18} {value}" for key, value in meta.items() if key not in HIDDEN]
    if meta.get("commands"):
        lines.append(f"  {'last command':<18} {meta['commands'][-1]}")
    lines.append("trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))
    for t in store.completed(BASELINE):
        lines.append(f"baseline  window NE {t.user_attrs['window_ne']:.4f}  FLOPs {t.user_attrs['flops']:,}")
    done = sorted(store.completed(CANDIDATE), key=lambda t: t.value)
    if done:
        lines.append(f"{'rank':>4} {'trial':>5} {'round':>5} {'score':>8} {'window NE':>10} {'FLOPs':>12}")
        for i, t in enumerate(done[:top], 1):
            a = t.user_attrs
            lines.append(
                f"{i:>4} {t.number:>5} {a.get('round', 0) + 1:>5} {t.value:>8.4f} {a['window_ne']:>10.4f} "
                f"{a['flops']:>12,}"
            )
    lines += [f"running/waiting: trial {t.number}" for t in store.pending(CANDIDATE)]
    halving = store.completed(HALVING)
    if halving:
        lines.append(
            f"successive halving: {len(halving)} evaluations up to rung {max(t.user_attrs['rung'] for t in halving)}"
        )
    fits = store.completed(FIT)
    if fits:
        lines.append(f"fits by the final trainer: {len(fits)} over {len({t.user_attrs['arch'] for t in fits})} archs")
    lines += path_lines(meta.get("summary", {}).get("path"))
    lines += _gamma_lines(store.completed(GAMMA), meta.get("summary", {}).get("run"))
    lines += _result_lines(meta.get("summary"))
    return lines


def _gamma_lines(trials: list, run) -> list[str]:
    """γ(θ) at the checkpoints of the latest run (an in-place search)."""
    trials = [t for t in trials if run is None or t.user_attrs.get("run") == run]
    if not trials:
        return []
    lines = [
        f"γ(θ) at {len(trials)} checkpoints:",
        f"  {'step':>7} {'FLOPs':>12} {'x base':>7} {'NE_batch':>9} {'entropy':>8}",
    ]
    for t in sorted(trials, key=lambda t: t.user_attrs["step"]):
        a = t.user_attrs
        lines.append(
            f"  {a['step']:>7,} {a['flops']:>12,} {a['flops_ratio']:>7.2f} {a['ne_batch']:>9.4f} {a['entropy']:>8.2f}"
        )
    return lines


def path_lines(path) -> list[str]:
    """A local search's incumbents, from the baseline."""
    if not path:
        return []
    lines = ["path of incumbents:", f"  {'step':>4} {'FLOPs':>12} {'val NE':>8} {'gain':>8}  move"]
    for k, s in enumerate(path):
        gain = f"{s['gain']:+.4f}" if s["gain"] is not None else ""
        lines.append(f"  {k:>4} {s['flops']:>12,} {s['val_ne']:>8.4f} {gain:>8}  {s['move']}")
    return lines


def _result_lines(summary) -> list[str]:
    if not summary:
        return ["no finished run recorded yet"]
    from ..final import verdict

    best = summary["best"]
    lines = [
        f"result: {summary.get('method', '')} winner {best.get('origin', 'best by proxy')}, FLOPs {best['flops']:,}"
    ]
    final = summary.get("final")
    if final:
        won = final["winner"]
        lines.append(f"  val NE {won['val_ne']:.4f}   eval NE {won['eval_ne']:.4f}   AUC {won['auc']:.4f}")
        lines.append("  " + verdict(final))
    return lines
