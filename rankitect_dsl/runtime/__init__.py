"""Turn a compiled space into trainable modules and train them."""

EMBED_OPTIMIZERS = ("rowwise-adagrad", "adam")  # here, not in optim.py, so the CLI lists them without torch
LR_SCHEDULES = ("linear", "constant")  # the body rate over a pass: decayed linearly to zero, or held
DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA where the machine has it
