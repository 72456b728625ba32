"""SSL methods: each a small bundle of pure functions for the one train step."""

from jejax.methods.base import Method, cosine_ema_momentum, ema
from jejax.methods.byol import BYOL
from jejax.methods.simclr import SimCLR
from jejax.methods.swav import SwAV

__all__ = ["BYOL", "Method", "SimCLR", "SwAV", "cosine_ema_momentum", "ema"]
