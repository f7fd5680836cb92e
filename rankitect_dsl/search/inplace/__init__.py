"""The in-place searches (one-shot RL, DNAS): a supernet trained on the engine while a distribution over
archs learns beside it; the policy, the Gumbel draws, the curves the report plots."""
