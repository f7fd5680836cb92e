"""The searchers and what they share: proxies, the study store, the final selection against the baseline."""

# Here, not in final.py, so the command line states its defaults without importing torch.
VAL_FRACTION = 0.1  # the validation slice: the latest part of the training rows (docs/search.md measures it)
FINALISTS = 3  # candidates the final trainer retrains beside the baseline
