"""Methods: each one module that registers itself by name (`METHODS`), a frozen dataclass
of hyperparameters with its model and a few pure functions for the one train step
(`jejax.methods.base.Method`). View methods share `jejax.methods.views.ViewMethod`."""

from jejax.methods.barlow_twins import BarlowTwins
from jejax.methods.base import (
    METHODS,
    Method,
    Setup,
    cosine_ema_momentum,
    ema,
    linear_ema_momentum,
    register_method,
)
from jejax.methods.byol import BYOL
from jejax.methods.dino import DINO
from jejax.methods.ijepa import IJEPA
from jejax.methods.mae import MAE
from jejax.methods.moco import MoCoV2, MoCoV3
from jejax.methods.simclr import SimCLR
from jejax.methods.simsiam import SimSiam
from jejax.methods.swav import SwAV
from jejax.methods.vicreg import VICReg
from jejax.methods.views import ViewMethod

__all__ = ["BYOL", "DINO", "IJEPA", "MAE", "METHODS", "BarlowTwins", "Method", "MoCoV2",
           "MoCoV3", "SimCLR", "SimSiam", "Setup", "SwAV", "VICReg", "ViewMethod",
           "cosine_ema_momentum", "ema", "linear_ema_momentum", "register_method"]
