"""jejax: joint-embedding self-supervised learning in JAX/Flax.

Subpackages: `losses` (pure loss functions), `augment` (on-device views), `models`
(Flax Linen), `methods` (SimCLR, BYOL, SwAV as pure functions for the one train step),
`train` (state, step, loop, checkpoints), `data` (offline Fashion-MNIST, TFDS by name,
captions and speech for multimodal pairs), `eval` (kNN, linear probe, collapse
diagnostics, plots); module `audio` (log-mel spectrograms on the device).
"""

import os

# One OpenBLAS thread, unless the user set a number. XLA's CPU backend calls LAPACK
# (scipy's OpenBLAS) for the eigendecomposition behind the train step's effective rank;
# OpenBLAS's own threads then spin beside XLA's thread pool on the same cores and cost
# the main job's step ~45 ms of its ~200 (experiments/bench_cpu.py, 2 cores). It must be
# set before that library loads, i.e. before jax first runs LAPACK: importing jejax first
# does that. The LAPACK calls here are on matrices of at most a few hundred rows.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
