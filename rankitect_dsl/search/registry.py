"""The search methods `rks search --method` offers: name → the module and class of its `Searcher`.
Imported by name only when chosen, so `rks --help` and `rks check` load none of them."""

from __future__ import annotations

import importlib

SEARCHERS = {
    "local": "rankitect_dsl.search.methods.local:LocalSearcher",
    "random": "rankitect_dsl.search.methods.sampling:RandomSearcher",
    "predictor": "rankitect_dsl.search.methods.predictor:PredictorSearcher",
    "evolution": "rankitect_dsl.search.methods.evolution:EvolutionSearcher",
    "oneshot": "rankitect_dsl.search.methods.oneshot:OneShotSearcher",
    "dnas": "rankitect_dsl.search.methods.dnas:DNASSearcher",
}


# What `rks search` runs without --method: the best measured across the shared sets (docs/search.md, Results).
DEFAULT = "predictor"


def searcher_class(name: str):
    module, cls = SEARCHERS[name].split(":")
    return getattr(importlib.import_module(module), cls)
