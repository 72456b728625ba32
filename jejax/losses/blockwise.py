"""Memory-bounded contrastive losses: NT-Xent, CLIP's and SigLIP's without the global
similarity matrix.

The dense losses (`nt_xent`, `clip_loss`) form the (2N, 2N) or (N, N) logits, which for a
global batch of 32k pairs is 16 GiB of float32 on every device that holds it. Here the
logits only ever exist one tile at a time:

* `ring_nt_xent`, `ring_clip_loss`: under `jax.shard_map`, each device keeps its own rows
  (the queries) and passes the key blocks around the ring of the data axis with
  `lax.ppermute`, folding each (local rows, local rows) tile into a running logsumexp
  (the online softmax of flash attention). Memory per device is O(N/P x N/P + N/P x D);
  with `chunk_size` the local rows are tiled too, and it is O(chunk_size x N/P).
* `ring_siglip_loss`: SigLIP's sigmoid loss the same way; a sum of independent pair
  terms needs no logsumexp, so its gradient is plain autodiff with each step recomputed.
* `chunked_nt_xent`: the same kernel on one device (or under `jit` auto-sharding), the
  2N anchors taken `chunk_size` rows at a time: O(chunk_size x 2N).

The InfoNCE gradient is a `jax.custom_vjp` of the logsumexp over keys. The forward pass keeps only
the inputs and the (rows,) logsumexp; the backward pass goes around the ring once more,
recomputes each tile's softmax from the saved logsumexp, adds the tile's query gradient
locally, and adds its key gradient to an accumulator that travels with the key block and
lands back on the block's own device after the last hop. Autodiff through the loop would
instead keep every key block of the ring as a residual, that is the whole gathered batch.

The positive of a row is not searched for: both views (or both modalities) are split over
the devices with the same row partition, so the positive of global row i lies on the
device that owns row i, at the same local index, and its logit is a local dot product that
plain autodiff handles. The one excluded logit of NT-Xent (an anchor against itself) is
the diagonal of the device's own block, met at ring step 0.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, Mesh
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jejax.numerics import l2_normalize
DATA_AXIS = "data"  # the name of the data axis of jejax.parallel's meshes


def chunked_nt_xent(z1: ArrayLike, z2: ArrayLike, *, temperature: float | ArrayLike,
                    chunk_size: int) -> jax.Array:
  """`nt_xent` with at most (chunk_size, 2N) logits alive at a time, forward and backward.

  Args:
    z1: (N, D) embeddings of the first views (normalised here).
    z2: (N, D) embeddings of the second views, row i the positive of `z1[i]`.
    temperature: tau (a float, or a traced scalar, which then gets its gradient).
    chunk_size: anchors per tile; must divide 2N.

  Returns:
    Scalar, equal to `nt_xent(z1, z2, temperature=temperature)`.

  Example:
    >>> z = jnp.eye(4)
    >>> chunked_nt_xent(z, z, temperature=1.0, chunk_size=2)  # log(e + 6) - 1
  """
  z1, z2 = _check_pair(z1, z2, "z1", "z2")
  n2 = 2 * z1.shape[0]
  _check_chunk_size(chunk_size, n2, "2N, the number of anchors")
  return _nt_xent_sum(z1, z2, _scale(temperature), chunk_size, None) / n2


def ring_nt_xent(z1: ArrayLike, z2: ArrayLike, *, temperature: float | ArrayLike,
                 mesh: Mesh | AbstractMesh, axis_name: str = DATA_AXIS,
                 chunk_size: int | None = None) -> jax.Array:
  """`nt_xent` over a batch split on `mesh[axis_name]`, key blocks passed round a ring.

  Each device holds its N/P rows of each view; its 2N/P anchors meet the 2N keys one
  device's block per ring step (Chen et al. 2020, eq. 1, the same loss as `nt_xent`).

  Args:
    z1: (N, D) global embeddings of the first views, N divisible by the axis size.
    z2: (N, D) global embeddings of the second views, row i the positive of `z1[i]`.
    temperature: tau (a float, or a traced scalar, which then gets its gradient).
    mesh: the mesh the batch is split over (an AbstractMesh too, e.g. that of
      `jax.set_mesh`); other axes, if any, see the loss replicated.
    axis_name: the data axis of `mesh`.
    chunk_size: local anchors per tile, dividing 2N/P; None takes all 2N/P at once.

  Returns:
    Scalar, the same on every device, equal to `nt_xent(z1, z2, temperature=temperature)`.

  Example:
    >>> mesh = jejax.parallel.make_mesh(8)
    >>> ring_nt_xent(z1, z2, temperature=0.1, mesh=mesh)  # z1, z2: (16k, 128), no (32k)^2
  """
  z1, z2 = _check_pair(z1, z2, "z1", "z2")
  n = z1.shape[0]
  local_rows = 2 * _local_batch(n, mesh, axis_name)
  chunk_size = _check_chunk_size(chunk_size or local_rows, local_rows,
                                 f"2N/P = {local_rows}, the anchors of one device")

  def per_device(z1, z2, scale):  # (N/P, D), (N/P, D), ()
    total = _nt_xent_sum(z1, z2, scale, chunk_size, axis_name)
    return jax.lax.psum(total, axis_name) / (2 * n)

  return _ring_map(per_device, mesh, axis_name)(z1, z2, _scale(temperature))


def ring_clip_loss(a: ArrayLike, b: ArrayLike, *, temperature: float | ArrayLike,
                   mesh: Mesh | AbstractMesh, axis_name: str = DATA_AXIS,
                   chunk_size: int | None = None) -> jax.Array:
  """`clip_loss` over a batch split on `mesh[axis_name]`, key blocks passed round a ring.

  Two rings run: image rows against the text blocks (the rows of the logits) and text rows
  against the image blocks (its columns), each with its own running logsumexp.

  Args:
    a: (N, D) global embeddings of one modality (images), N divisible by the axis size.
    b: (N, D) global embeddings of the other (texts), row i paired with `a[i]`.
    temperature: tau, 1 / CLIP's logit scale (a float, or a traced scalar, which then gets
      its gradient: CLIP learns it).
    mesh: the mesh the batch is split over.
    axis_name: the data axis of `mesh`.
    chunk_size: local rows per tile, dividing N/P; None takes all N/P at once.

  Returns:
    Scalar, the same on every device, equal to `clip_loss(a, b, temperature=temperature)`.
  """
  a, b = _check_pair(a, b, "a", "b")
  n = a.shape[0]
  local_rows = _local_batch(n, mesh, axis_name)
  chunk_size = _check_chunk_size(chunk_size or local_rows, local_rows,
                                 f"N/P = {local_rows}, the pairs of one device")

  def per_device(a, b, scale):  # (N/P, D), (N/P, D), ()
    a, b = l2_normalize(a), l2_normalize(b)
    positive = scale * jnp.sum(a * b, axis=1)  # (N/P,) the diagonal of the logits
    rows = _logsumexp_over_keys(a, b, scale, False, chunk_size, axis_name)
    columns = _logsumexp_over_keys(b, a, scale, False, chunk_size, axis_name)
    total = jnp.sum(rows) + jnp.sum(columns) - 2.0 * jnp.sum(positive)
    return jax.lax.psum(total, axis_name) / (2 * n)

  return _ring_map(per_device, mesh, axis_name)(a, b, _scale(temperature))


def ring_siglip_loss(a: ArrayLike, b: ArrayLike, *, scale: float | ArrayLike,
                     bias: float | ArrayLike, mesh: Mesh | AbstractMesh,
                     axis_name: str = DATA_AXIS, chunk_size: int | None = None) -> jax.Array:
  """`siglip_loss` over a batch split on `mesh[axis_name]`, text blocks passed round a ring.

  The chunked sigmoid loss of Zhai et al. 2023 (sec. 3.3, Figure 1): each device scores
  its image rows against its own text block (the positives sit on that block's diagonal),
  then against every other device's block as it comes round, negatives only. The loss is
  a plain sum of pair terms, so there is no running max or logsumexp to carry; each ring
  step and each tile of `chunk_size` rows is rematerialised in the backward pass
  (`jax.checkpoint`), which then keeps only the text block of every step. Per device that
  is O(N D) for those blocks plus one (chunk_size, N/P) tile of logits: linear in the
  batch, where the dense loss holds (N/P, N) logits and their gradient.

  Args:
    a: (N, D) global embeddings of one modality (images), N divisible by the axis size.
    b: (N, D) global embeddings of the other (texts), row i paired with `a[i]`.
    scale: t = exp(t') (a float, or a traced scalar, which then gets its gradient).
    bias: b (likewise).
    mesh: the mesh the batch is split over.
    axis_name: the data axis of `mesh`.
    chunk_size: local rows per tile, dividing N/P; None takes all N/P at once.

  Returns:
    Scalar, the same on every device, equal to `siglip_loss(a, b, scale=scale,
    bias=bias)`.
  """
  a, b = _check_pair(a, b, "a", "b")
  n = a.shape[0]
  local_rows = _local_batch(n, mesh, axis_name)
  chunk_size = _check_chunk_size(chunk_size or local_rows, local_rows,
                                 f"N/P = {local_rows}, the pairs of one device")
  hops = mesh.shape[axis_name] - 1

  def per_device(a, b, scale, bias):  # (N/P, D), (N/P, D), (), ()
    queries = _chunks(l2_normalize(a), chunk_size)  # (T, c, D)
    keys = l2_normalize(b)
    total = _sigmoid_block_sum(queries, keys, scale, bias, True, axis_name)

    def hop(carry, _):
      keys, total = carry
      keys = _pass_on(keys, axis_name)
      return (keys, total + _sigmoid_block_sum(queries, keys, scale, bias, False,
                                               axis_name)), None

    (_, total), _ = jax.lax.scan(hop, (keys, total), None, length=hops)
    return jax.lax.psum(total, axis_name) / n

  scale = jnp.asarray(scale, jnp.float32)
  bias = jnp.asarray(bias, jnp.float32)
  return jax.shard_map(per_device, mesh=mesh,
                       in_specs=(P(axis_name), P(axis_name), P(), P()),
                       out_specs=P())(a, b, scale, bias)


@functools.partial(jax.checkpoint, static_argnums=(4, 5))
def _sigmoid_block_sum(queries: jax.Array, k: jax.Array, scale: jax.Array, bias: jax.Array,
                       own_block: bool, axis_name: str) -> jax.Array:
  """-sum of log sigmoid(z_ij (scale q_i . k_j + bias)) over the query tiles (T, c, D)
  and one key block (s, D); z_ij = 1 only on the diagonal of the device's own block."""
  def tile(total, args):
    t, q = args
    logits = scale * jnp.matmul(q, k.T, preferred_element_type=jnp.float32) + bias  # (c, s)
    signs = -1.0
    if own_block:
      c, s = logits.shape
      row = t * c + jnp.arange(c)[:, None]
      signs = jnp.where(row == jnp.arange(s)[None, :], 1.0, -1.0)
    return total - jnp.sum(jax.nn.log_sigmoid(signs * logits)), None

  total = _varying(jnp.zeros((), jnp.float32), axis_name)
  total, _ = jax.lax.scan(jax.checkpoint(tile), total,
                          (jnp.arange(queries.shape[0]), queries))
  return total


def _nt_xent_sum(z1: jax.Array, z2: jax.Array, scale: jax.Array, chunk_size: int,
                 axis_name: str | None) -> jax.Array:
  """Sum over the local 2n anchors of -log softmax of the positive; z1, z2: (n, D)."""
  u = l2_normalize(jnp.concatenate([z1, z2], axis=0))  # (2n, D)
  n = z1.shape[0]
  # Anchor i of view 1 and anchor n + i of view 2 are each other's positive.
  positive = scale * jnp.sum(u[:n] * u[n:], axis=1)  # (n,)
  lse = _logsumexp_over_keys(u, u, scale, True, chunk_size, axis_name)  # (2n,)
  return jnp.sum(lse) - 2.0 * jnp.sum(positive)


def _ring_map(per_device, mesh: Mesh | AbstractMesh, axis_name: str):
  # The two row-split inputs and a replicated scale in, the replicated loss out.
  return jax.shard_map(per_device, mesh=mesh, in_specs=(P(axis_name), P(axis_name), P()),
                       out_specs=P())


# --- The kernel: logsumexp of each query over every key, one tile at a time. ---


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _logsumexp_over_keys(q: jax.Array, k: jax.Array, scale: jax.Array, exclude_diagonal: bool,
                         chunk_size: int, axis_name: str | None) -> jax.Array:
  """lse_i = log sum_j exp(scale q_i . k_j) over the keys of every device on the ring.

  Args:
    q: (r, D) this device's queries, r divisible by `chunk_size`.
    k: (s, D) this device's key block; the keys are the blocks of all devices of
      `axis_name` (only this one when `axis_name` is None).
    scale: () inverse temperature.
    exclude_diagonal: leave out q_i . k_i of the own block (q is k: NT-Xent's self-pair).
    chunk_size: queries per tile.
    axis_name: the ring's mesh axis, or None for one block.

  Returns:
    (r,) float32 logsumexps.
  """
  return _ring_forward(q, k, scale, exclude_diagonal, chunk_size, axis_name)[0]


def _ring_forward(q, k, scale, exclude_diagonal, chunk_size, axis_name):
  queries = _chunks(q, chunk_size)  # (T, c, D)
  m = jnp.full(queries.shape[:2], -jnp.inf, jnp.float32)  # running max, (T, c)
  l = jnp.zeros(queries.shape[:2], jnp.float32)  # running sum of exp(logit - m)
  m, l = _fold_block(queries, k, scale, m, l, exclude_diagonal)

  def hop(_, carry):
    k, m, l = carry
    k = _pass_on(k, axis_name)
    m, l = _fold_block(queries, k, scale, m, l, False)
    return k, m, l

  if axis_name is not None:
    _, m, l = jax.lax.fori_loop(1, jax.lax.axis_size(axis_name), hop, (k, m, l))
  lse = (m + jnp.log(l)).reshape(-1)  # (r,)
  return lse, (q, k, scale, lse)


def _ring_backward(exclude_diagonal, chunk_size, axis_name, residuals, dlse):
  """Second trip round the ring: each tile's softmax from the saved lse; the key gradient
  travels with its block and, after one last hop, is back on the block's device."""
  q, k, scale, lse = residuals
  queries = _chunks(q, chunk_size)
  lse, dlse = lse.reshape(queries.shape[:2]), dlse.reshape(queries.shape[:2])
  dq, dk, dscale = _block_gradients(queries, lse, dlse, k, scale, exclude_diagonal,
                                    axis_name)

  def hop(_, carry):
    k, dk, dq, dscale = carry
    k, dk = _pass_on(k, axis_name), _pass_on(dk, axis_name)
    dq_, dk_, dscale_ = _block_gradients(queries, lse, dlse, k, scale, False, axis_name)
    return k, dk + dk_, dq + dq_, dscale + dscale_

  if axis_name is not None:
    _, dk, dq, dscale = jax.lax.fori_loop(1, jax.lax.axis_size(axis_name), hop,
                                          (k, dk, dq, dscale))
    dk = _pass_on(dk, axis_name)  # hop P: home
    dscale = jax.lax.psum(dscale, axis_name)  # the scale is shared by all devices
  return (dq.reshape(q.shape).astype(q.dtype), dk.astype(k.dtype),
          dscale.astype(scale.dtype))


_logsumexp_over_keys.defvjp(_ring_forward, _ring_backward)


def _fold_block(queries: jax.Array, k: jax.Array, scale: jax.Array, m: jax.Array,
                l: jax.Array, exclude_diagonal: bool) -> tuple[jax.Array, jax.Array]:
  """Folds one key block into the running (max, sum) of every query, a tile at a time.

  queries: (T, c, D); k: (s, D); m, l: (T, c). Subtracting the running max keeps every
  exp <= 1, so low temperatures and large norms do not overflow.
  """
  def tile(args):
    t, q, m, l = args
    logits = _tile_logits(t, q, k, scale, exclude_diagonal)  # (c, s)
    m_new = jnp.maximum(m, jnp.max(logits, axis=1))
    l_new = l * jnp.exp(m - m_new) + jnp.sum(jnp.exp(logits - m_new[:, None]), axis=1)
    return m_new, l_new

  return jax.lax.map(tile, (jnp.arange(queries.shape[0]), queries, m, l))


def _block_gradients(queries, lse, dlse, k, scale, exclude_diagonal, axis_name):
  """Gradients of sum_i dlse_i lse_i restricted to one key block.

  queries: (T, c, D); lse, dlse: (T, c); k: (s, D). Returns dq (T, c, D) for the queries,
  dk (s, D) for the block, and dscale (), all float32.
  """
  def tile(carry, args):
    dk, dscale = carry
    t, q, lse, dlse = args
    logits = _tile_logits(t, q, k, scale, exclude_diagonal)  # (c, s)
    # d lse_i / d logit_ij = softmax_ij; an excluded logit gives exp(-inf) = 0.
    w = dlse[:, None] * jnp.exp(logits - lse[:, None])
    dq = scale * jnp.matmul(w, k, preferred_element_type=jnp.float32)  # (c, s) @ (s, D)
    dk = dk + scale * jnp.matmul(w.T, q, preferred_element_type=jnp.float32)
    # d logit / d scale = logit / scale; an excluded -inf (where w = 0) must not make NaN.
    dscale = dscale + jnp.sum(w * jnp.where(w == 0, 0.0, logits)) / scale
    return (dk, dscale), dq

  carry = (jnp.zeros(k.shape, jnp.float32), jnp.zeros((), jnp.float32))
  carry = _varying(carry, axis_name)
  (dk, dscale), dq = jax.lax.scan(tile, carry, (jnp.arange(queries.shape[0]), queries, lse,
                                                dlse))
  return dq, dk, dscale


def _tile_logits(t: jax.Array, q: jax.Array, k: jax.Array, scale: jax.Array,
                 exclude_diagonal: bool) -> jax.Array:
  """(c, s) float32 logits of query tile `t` (rows t*c ...) against the key block `k`."""
  logits = scale * jnp.matmul(q, k.T, preferred_element_type=jnp.float32)  # (c, D) @ (D, s)
  if exclude_diagonal:
    c, s = logits.shape
    row = t * c + jnp.arange(c)[:, None]
    logits = jnp.where(row == jnp.arange(s)[None, :], -jnp.inf, logits)
  return logits


def _pass_on(x: jax.Array, axis_name: str) -> jax.Array:
  """Sends this device's `x` to the next device of the ring (the last to the first)."""
  size = jax.lax.axis_size(axis_name)
  return jax.lax.ppermute(x, axis_name, [(i, (i + 1) % size) for i in range(size)])


def _varying(tree, axis_name: str | None):
  """`tree` typed as varying over `axis_name` (as-is without a ring).

  Under `shard_map` (check_vma) a loop carry that starts as a constant and becomes
  per-device after one iteration is a type error; the zero accumulators are cast upfront.
  """
  return tree if axis_name is None else jax.lax.pcast(tree, axis_name, to="varying")


def _chunks(x: jax.Array, chunk_size: int) -> jax.Array:
  """(r, D) -> (r / chunk_size, chunk_size, D)."""
  return x.reshape(x.shape[0] // chunk_size, chunk_size, x.shape[1])


def _scale(temperature: float | ArrayLike) -> jax.Array:
  return 1.0 / jnp.asarray(temperature, jnp.float32)


# --- Argument checks: shapes are static, so these raise at trace time. ---


def _check_pair(x: ArrayLike, y: ArrayLike, x_name: str, y_name: str
                ) -> tuple[jax.Array, jax.Array]:
  x, y = jnp.asarray(x), jnp.asarray(y)
  if x.ndim != 2 or x.shape != y.shape:
    raise ValueError(f"{x_name} and {y_name} must both be (N, D) with the same shape; got "
                     f"{x_name}: {x.shape}, {y_name}: {y.shape}")
  return x, y


def _local_batch(n: int, mesh: Mesh | AbstractMesh, axis_name: str) -> int:
  if axis_name not in mesh.axis_names:
    raise ValueError(f"axis_name={axis_name!r} is not an axis of the mesh {mesh.axis_names}")
  size = mesh.shape[axis_name]
  if n % size:
    raise ValueError(f"the batch of {n} pairs does not split over the {size} devices of mesh "
                     f"axis {axis_name!r}; choose a multiple of {size}")
  return n // size


def _check_chunk_size(chunk_size: int, rows: int, what: str) -> int:
  if chunk_size <= 0 or rows % chunk_size:
    raise ValueError(f"chunk_size={chunk_size} must be positive and divide {what}")
  return chunk_size
