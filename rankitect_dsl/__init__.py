"""rankitect_dsl: a search-space language and compiler for NAS of ranking models (after Rankitect)."""
from .arch import Arch, ChoiceArch
from .errors import ArchError, RksError
from .space import Space, load_source, load_space
from .transfer import transfer_back, transfer_weights

__all__ = ["Arch", "ChoiceArch", "ArchError", "RksError", "Space", "load_space", "load_source", "transfer_weights", "transfer_back"]
