"""The search methods, one module each; `search/registry.py` names them."""
