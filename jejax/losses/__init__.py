"""Pure-function SSL losses on embeddings: `(z1, z2, ..., *, hyperparameters) -> scalar`
or `(scalar, metrics)`."""

from jejax.losses.blockwise import (chunked_nt_xent, ring_clip_loss, ring_nt_xent,
                                    ring_siglip_loss)
from jejax.losses.clustering import dino_loss, sinkhorn_knopp, swav_loss
from jejax.losses.contrastive import (clip_loss, moco_v2_loss, moco_v3_loss, nt_xent,
                                      siglip_loss)
from jejax.losses.information import (barlow_twins_loss, cross_correlation, decur_loss,
                                      vicreg_loss)
from jejax.losses.predictive import ijepa_loss, smooth_l1
from jejax.losses.reconstruction import mae_loss, normalize_patches, patchify
from jejax.losses.regression import negative_cosine, normalized_mse

__all__ = ["barlow_twins_loss", "chunked_nt_xent", "clip_loss", "cross_correlation",
           "decur_loss", "dino_loss", "ijepa_loss",
           "mae_loss", "moco_v2_loss", "moco_v3_loss", "negative_cosine", "normalize_patches",
           "normalized_mse", "nt_xent", "patchify", "ring_clip_loss", "ring_nt_xent",
           "ring_siglip_loss", "siglip_loss", "sinkhorn_knopp", "smooth_l1", "swav_loss",
           "vicreg_loss"]
