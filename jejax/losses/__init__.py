"""Pure-function SSL losses on embeddings: `(z1, z2, ..., *, hyperparameters) -> scalar`."""

from jejax.losses.clustering import sinkhorn_knopp, swav_loss
from jejax.losses.contrastive import nt_xent
from jejax.losses.regression import normalized_mse

__all__ = ["nt_xent", "normalized_mse", "sinkhorn_knopp", "swav_loss"]
