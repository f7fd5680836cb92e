"""Turn a compiled space into trainable modules and train them."""

EMBED_OPTIMIZERS = ("rowwise-adagrad", "adam")  # here, not in optim.py, so the CLI lists them without torch
