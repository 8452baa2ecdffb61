"""azuresim: an Azure simulator speaking the real ARM, Log Analytics and metrics
REST protocols over TLS, with fault injection and a call journal."""

from stanch.azuresim.persist import CorruptEstate
from stanch.azuresim.server import AzureSim
from stanch.azuresim.world import World, load_world

__all__ = ["AzureSim", "CorruptEstate", "World", "load_world"]
