"""jejax: joint-embedding self-supervised learning in JAX/Flax.

Subpackages: `losses` (pure loss functions), `augment` (on-device views), `models`
(Flax Linen), `methods` (SimCLR, BYOL, SwAV as pure functions for the one train step),
`train` (state, step, loop, checkpoints), `data` (offline Fashion-MNIST, TFDS by name,
captions and speech for multimodal pairs), `eval` (kNN, linear probe, collapse
diagnostics, plots); module `audio` (log-mel spectrograms on the device).
"""

__version__ = "0.1.0"
