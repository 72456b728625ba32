"""Training: the state pytree, the one jitted step, optimizers, checkpoints, the loop."""

from jejax.train.state import TrainState
from jejax.train.step import init_state, make_step, train_step

__all__ = ["TrainState", "init_state", "make_step", "train_step"]
