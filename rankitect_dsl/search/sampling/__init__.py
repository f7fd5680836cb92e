"""The sampling searches: the loop of rounds, the proxies that score a candidate, the proposers (the
predictor's RL sampler, evolution), the local search and its neighbourhood, the Pareto front."""
