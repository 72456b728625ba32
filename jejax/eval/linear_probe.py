"""Linear probe: softmax regression on frozen, standardised features, trained with optax."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Zero mean, unit variance per feature, with the train split's statistics (the
  affine-free BatchNorm before the linear layer of MoCo/SimCLR linear evaluation)."""
  mean, std = train.mean(0), train.std(0) + 1e-6
  return (train - mean) / std, (test - mean) / std


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size", "learning_rate",
                                             "weight_decay"))
def _fit(x, y, key, *, num_classes, epochs, batch_size, learning_rate, weight_decay):
  n, f = x.shape
  steps_per_epoch = n // batch_size
  schedule = optax.cosine_decay_schedule(learning_rate, epochs * steps_per_epoch)
  tx = optax.adamw(schedule, weight_decay=weight_decay)
  params = {"w": jnp.zeros((f, num_classes)), "b": jnp.zeros((num_classes,))}

  def loss_fn(params, xb, yb):
    logits = xb @ params["w"] + params["b"]  # (B, F) @ (F, C) -> (B, C)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def adamw_step(carry, idx):
    params, opt_state = carry
    grads = jax.grad(loss_fn)(params, x[idx], y[idx])
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  def epoch(carry, key):
    perm = jax.random.permutation(key, n)[:steps_per_epoch * batch_size]
    return jax.lax.scan(adamw_step, carry, perm.reshape(steps_per_epoch, batch_size))[0], None

  (params, _), _ = jax.lax.scan(epoch, (params, tx.init(params)), jax.random.split(key, epochs))
  return params


def linear_probe(train_features: ArrayLike, train_labels: ArrayLike, test_features: ArrayLike,
                 test_labels: ArrayLike, *, num_classes: int, epochs: int = 100,
                 batch_size: int = 1024, learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, seed: int = 0) -> dict[str, float]:
  """Trains a linear classifier on frozen features; reports train and test accuracy.

  Args:
    train_features: (N, F); train_labels: (N,) ints. test_*: the split reported.
    epochs, batch_size, learning_rate, weight_decay: AdamW with cosine decay.

  Returns:
    {'train_accuracy': ..., 'test_accuracy': ...} over the full splits given.
  """
  x_train, x_test = standardize(np.asarray(train_features, np.float32),
                                np.asarray(test_features, np.float32))
  y_train = np.asarray(train_labels, np.int32)
  batch_size = min(batch_size, len(x_train))
  params = _fit(jnp.asarray(x_train), jnp.asarray(y_train), jax.random.key(seed),
                num_classes=num_classes, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, weight_decay=weight_decay)

  def accuracy(x, y):
    logits = jnp.asarray(x) @ params["w"] + params["b"]
    return float(np.mean(np.asarray(jnp.argmax(logits, -1)) == np.asarray(y)))

  return {"train_accuracy": accuracy(x_train, y_train),
          "test_accuracy": accuracy(x_test, test_labels)}
