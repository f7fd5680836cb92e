"""Where searches keep what they learn: the study store (Optuna storages), its viewer, the helper workers."""
