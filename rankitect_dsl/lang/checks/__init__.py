"""The checker's parts: what they share (`base`), the settings, the choices, the baseline."""
