"""Per-image augmentations that run on the accelerator, inside the jitted train step.

Every op takes one PRNG key and one image, float32 (H, W, C) in [0, 1] with C = 1 or 3,
and returns a float32 image in [0, 1]. Random application is a `jnp.where` on a Bernoulli
draw, never Python control flow on traced values, so every op vmaps over a batch of keys
and images (see `jejax.augment.views.augment_batch`). Strengths, probabilities and sizes
are Python numbers: they are fixed per experiment and static under `jax.jit`.

Every random op is a deterministic function of a few U[0, 1) numbers (`*_from_uniforms`)
behind a keyed wrapper that draws them. `views.augment_view` draws the numbers for all
its ops in one `jax.random.uniform` call instead of one call per op: on CPU each call
lowers to its own rolled threefry loop that XLA compiles separately, and one draw per view
halves the compile time of a view there (about 4 s to 2 s for the SimCLR recipe).

For C = 1 the chroma ops (saturation, hue, grayscale) are the identity, because a gray
image has no chroma. The channel count is static, so they are skipped at trace time.

References:
  ImageNet-C: Hendrycks and Dietterich, "Benchmarking Neural Network Robustness to Common
    Corruptions and Perturbations", ICLR 2019, arXiv:1903.12261.
  SimCLR: Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020, arXiv:2002.05709, Appendix A.
  BYOL: Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, arXiv:2006.07733,
    Appendix B.

Example:
  >>> key = jax.random.key(0)
  >>> image = jnp.full((28, 28, 1), 0.5)
  >>> random_resized_crop(key, image, out_size=(28, 28)).shape
  (28, 28, 1)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

# ITU-R BT.601 luma, the weights torchvision and PIL use for "L" conversion.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# Matmuls carry pixel values in the crop-resize; the default precision of TPUs (bf16) and
# of some GPUs (tf32) would quantise them, so they are asked for full float32.
_PIXEL_PRECISION = lax.Precision.HIGHEST


# How many U[0, 1) numbers each random op reads (flip, grayscale and solarize read one).
CROP_CANDIDATES = 10
CROP_UNIFORMS = 2 * CROP_CANDIDATES + 2  # area and aspect per candidate; top; left
JITTER_UNIFORMS = 9  # apply; 4 factors; 4 sort keys for the order
BLUR_UNIFORMS = 2  # apply; sigma
MAX_UNIFORMS = max(CROP_UNIFORMS, JITTER_UNIFORMS, BLUR_UNIFORMS)


def _clip01(image: jax.Array) -> jax.Array:
  return jnp.clip(image, 0.0, 1.0)


def _maybe(u: jax.Array, prob: float, transformed: jax.Array, image: jax.Array) -> jax.Array:
  """`transformed` if the U[0, 1) draw `u` < `prob` (probability `prob`), else `image`.

  A select, not a branch, so it vmaps.
  """
  return jnp.where(u < prob, transformed, image)


def _scale_uniform(u: jax.Array, low: float, high: float) -> jax.Array:
  """Maps U[0, 1) draws to U[low, high); low == high gives exactly low."""
  return low + (high - low) * u


# --- random resized crop -------------------------------------------------------------


def crop_box_from_uniforms(
    uniforms: ArrayLike,
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> jax.Array:
  """`sample_crop_box` given its draws: `uniforms` is (>= CROP_UNIFORMS,) in [0, 1).

  The area fraction is uniform in `scale` and the log aspect ratio (width / height) is
  uniform in `log(ratio)`; the rounded box is kept if it fits in the image. Instead of a
  loop of tries, `CROP_CANDIDATES` boxes are drawn at once and the first that fits is
  taken; if none fits, the box is the whole image. The offset is uniform over the
  positions where the box fits.

  Returns:
    float32 (4,): top, left, crop height, crop width, all whole numbers of pixels.
  """
  uniforms = jnp.asarray(uniforms, jnp.float32)
  area_u = uniforms[:CROP_CANDIDATES]
  aspect_u = uniforms[CROP_CANDIDATES:2 * CROP_CANDIDATES]
  top_u, left_u = uniforms[2 * CROP_CANDIDATES], uniforms[2 * CROP_CANDIDATES + 1]
  area = height * width * _scale_uniform(area_u, scale[0], scale[1])
  aspect = jnp.exp(_scale_uniform(aspect_u, math.log(ratio[0]), math.log(ratio[1])))
  crop_w = jnp.round(jnp.sqrt(area * aspect))
  crop_h = jnp.round(jnp.sqrt(area / aspect))
  fits = (crop_h > 0) & (crop_h <= height) & (crop_w > 0) & (crop_w <= width)
  first = jnp.argmax(fits)  # index of the first True (0 if none, overridden below)
  crop_h = jnp.where(fits.any(), crop_h[first], height)
  crop_w = jnp.where(fits.any(), crop_w[first], width)
  # floor(u * (n + 1)) is uniform on {0, ..., n}: every position where the box fits.
  top = jnp.floor(top_u * (height - crop_h + 1))
  left = jnp.floor(left_u * (width - crop_w + 1))
  return jnp.stack([top, left, crop_h, crop_w]).astype(jnp.float32)


def sample_crop_box(
    key: ArrayLike,
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> jax.Array:
  """Samples an Inception-style crop box, as torchvision's `RandomResizedCrop` does.

  Area fraction ~ U[scale], log aspect ratio ~ U[log ratio], first of
  `CROP_CANDIDATES` tries that fits, else the whole image (see
  `crop_box_from_uniforms`). Szegedy et al., "Going Deeper with Convolutions", CVPR 2015;
  used by SimCLR (arXiv:2002.05709) and BYOL (arXiv:2006.07733) with the defaults here.

  Args:
    key: PRNG key.
    height, width: image size in pixels.
    scale: (low, high) range of the crop area as a fraction of the image area.
    ratio: (low, high) range of the crop aspect ratio, width / height.

  Returns:
    float32 (4,): top, left, crop height, crop width, all whole numbers of pixels.
  """
  return crop_box_from_uniforms(jax.random.uniform(key, (CROP_UNIFORMS,)), height, width,
                                scale=scale, ratio=ratio)


def _interpolation_matrix(start: jax.Array, length: jax.Array, out_len: int,
                          in_len: int) -> jax.Array:
  """(out_len, in_len) weights of linear interpolation of pixels [start, start + length).

  Output pixel centres map to input coordinates with half-pixel centres (the convention of
  `torchvision` with `align_corners=False` and of `jax.image.resize`), clamped to the
  crop so that, as with crop-then-resize, no pixel outside the box leaks in. Row y has
  weight 1 - |c_y - i| on the (at most two) input pixels i within 1 of its centre c_y.
  """
  centres = start + (jnp.arange(out_len) + 0.5) * (length / out_len) - 0.5
  centres = jnp.clip(centres, start, start + length - 1)
  return jnp.maximum(0.0, 1.0 - jnp.abs(centres[:, None] - jnp.arange(in_len)[None, :]))


def crop_and_resize(image: ArrayLike, box: ArrayLike, out_size: tuple[int, int]) -> jax.Array:
  """Bilinear resize of the box `(top, left, height, width)` of `image` to `out_size`.

  The box may be traced. Bilinear interpolation of an axis-aligned box is separable, so
  it is two small matmuls with interpolation matrices, (out_h, H) @ (H, W, C) and
  (out_w, W) over the width, instead of a per-pixel gather; they use the MXU / tensor
  cores where a gather would not. There is no antialiasing: the crop is usually
  enlarged, as in SimCLR and BYOL.

  Args:
    image: float32 (H, W, C).
    box: (4,) top, left, height, width in pixels, as from `sample_crop_box`.
    out_size: (out_h, out_w).

  Returns:
    float32 (out_h, out_w, C) in [0, 1]. A box covering the whole image with
    `out_size == (H, W)` gives `image` back exactly.
  """
  image = jnp.asarray(image, jnp.float32)
  height, width, _ = image.shape
  top, left, crop_h, crop_w = jnp.asarray(box, jnp.float32)
  rows = _interpolation_matrix(top, crop_h, out_size[0], height)
  cols = _interpolation_matrix(left, crop_w, out_size[1], width)
  out = jnp.einsum("yi,ixc->yxc", rows, image, precision=_PIXEL_PRECISION)  # (out_h, W, C)
  out = jnp.einsum("xj,yjc->yxc", cols, out, precision=_PIXEL_PRECISION)  # (out_h, out_w, C)
  return _clip01(out)


def random_resized_crop(
    key: ArrayLike,
    image: ArrayLike,
    *,
    out_size: tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> jax.Array:
  """Random crop of random area and aspect ratio, resized bilinearly to `out_size`.

  See `sample_crop_box` for the distribution of the box (torchvision's
  `RandomResizedCrop`, SimCLR arXiv:2002.05709 Appendix A) and `crop_and_resize`.

  Args:
    key: PRNG key.
    image: float32 (H, W, C) in [0, 1].
    out_size: (out_h, out_w).
    scale: range of the crop area fraction; default (0.08, 1.0).
    ratio: range of the crop aspect ratio width / height; default (3/4, 4/3).

  Returns:
    float32 (out_h, out_w, C) in [0, 1]. With `scale=(1, 1)` and `out_size == (H, W)`
    it is the identity.
  """
  image = jnp.asarray(image, jnp.float32)
  height, width, _ = image.shape
  box = sample_crop_box(key, height, width, scale=scale, ratio=ratio)
  return crop_and_resize(image, box, out_size)


# --- flip ----------------------------------------------------------------------------


def random_flip_from_uniforms(uniforms: ArrayLike, image: ArrayLike, *,
                              prob: float = 0.5) -> jax.Array:
  """`random_flip` given its draw: flips when uniforms[0] < prob."""
  image = jnp.asarray(image, jnp.float32)
  return _maybe(uniforms[0], prob, image[:, ::-1], image)


def random_flip(key: ArrayLike, image: ArrayLike, *, prob: float = 0.5) -> jax.Array:
  """Horizontal (left-right) flip with probability `prob` (default 0.5).

  SimCLR (arXiv:2002.05709) and BYOL (arXiv:2006.07733) use p = 0.5.

  Args:
    key: PRNG key.
    image: float32 (H, W, C).
    prob: probability of flipping.

  Returns:
    float32 (H, W, C).
  """
  return random_flip_from_uniforms(jax.random.uniform(key, (1,)), image, prob=prob)


# --- colour --------------------------------------------------------------------------


def rgb_to_grayscale(image: ArrayLike) -> jax.Array:
  """ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B.

  Args:
    image: float32 (H, W, C), C = 1 or 3; a 1-channel image is already gray.

  Returns:
    float32 (H, W, 1) in [0, 1].
  """
  image = jnp.asarray(image, jnp.float32)
  if image.shape[-1] == 1:
    return image
  luma = jnp.einsum("hwc,c->hw", image, jnp.asarray(LUMA_WEIGHTS, jnp.float32),
                    precision=_PIXEL_PRECISION)
  # The weights sum to 1 only up to rounding, so white could land a hair above 1.
  return _clip01(luma[..., None])


def _wrap(x: jax.Array, period: float) -> jax.Array:
  """x modulo `period`, in [0, period].

  Written with floor because XLA:CPU lowers a float remainder (`jnp.mod`) to a scalar
  `fmodf` call per element, which made the HSV round trip 4x slower.
  """
  return x - period * jnp.floor(x / period)


def rgb_to_hsv(image: ArrayLike) -> jax.Array:
  """RGB to HSV, every component in [0, 1] (hue in turns).

  Smith, "Color Gamut Transform Pairs", SIGGRAPH 1978. The hue of a gray pixel
  (max == min) and the saturation of black are 0, as in Python's `colorsys`.

  Args:
    image: float32 (..., 3) RGB in [0, 1].

  Returns:
    float32 (..., 3): hue, saturation, value.
  """
  image = jnp.asarray(image, jnp.float32)
  red, green, blue = image[..., 0], image[..., 1], image[..., 2]
  value = jnp.max(image, axis=-1)
  chroma = value - jnp.min(image, axis=-1)
  saturation = jnp.where(value > 0, chroma / jnp.where(value > 0, value, 1.0), 0.0)
  # Safe divisor: gray pixels have chroma 0 and hue 0 by convention.
  safe_chroma = jnp.where(chroma > 0, chroma, 1.0)
  # Hue in sixths of a turn, measured from the sector of the largest component.
  hue_sixths = jnp.where(
      value == red, _wrap((green - blue) / safe_chroma, 6.0),
      jnp.where(value == green, (blue - red) / safe_chroma + 2.0,
                (red - green) / safe_chroma + 4.0))
  hue = jnp.where(chroma > 0, hue_sixths / 6.0, 0.0)
  return jnp.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(image: ArrayLike) -> jax.Array:
  """HSV (components in [0, 1], hue in turns) to RGB, inverse of `rgb_to_hsv`.

  Uses the closed form f(n) = V - V S clip(min(k, 4 - k), 0, 1), k = (n + 6 H) mod 6,
  with n = 5, 3, 1 for R, G, B: branch-free, so it vectorises without selects.

  Args:
    image: float32 (..., 3) HSV.

  Returns:
    float32 (..., 3) RGB in [0, 1].
  """
  image = jnp.asarray(image, jnp.float32)
  hue, saturation, value = image[..., 0:1], image[..., 1:2], image[..., 2:3]
  k = _wrap(jnp.asarray([5.0, 3.0, 1.0]) + 6.0 * hue, 6.0)
  return _clip01(value - value * saturation * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0))


def _blend(image: jax.Array, other: jax.Array, factor: ArrayLike) -> jax.Array:
  """factor * image + (1 - factor) * other, clipped: torchvision's colour blend."""
  return _clip01(factor * image + (1.0 - factor) * other)


def adjust_brightness(image: ArrayLike, factor: ArrayLike) -> jax.Array:
  """Multiplies by `factor` (1 is the identity), clipped to [0, 1].

  Args:
    image: float32 (H, W, C).
    factor: scalar >= 0.

  Returns:
    float32 (H, W, C).
  """
  return _clip01(jnp.asarray(image, jnp.float32) * factor)


def adjust_contrast(image: ArrayLike, factor: ArrayLike) -> jax.Array:
  """Blends with the mean luma of the image (1 is the identity, 0 is flat gray).

  Args:
    image: float32 (H, W, C).
    factor: scalar >= 0.

  Returns:
    float32 (H, W, C).
  """
  image = jnp.asarray(image, jnp.float32)
  return _blend(image, jnp.mean(rgb_to_grayscale(image)), factor)


def adjust_saturation(image: ArrayLike, factor: ArrayLike) -> jax.Array:
  """Blends with the grayscale image (1 is the identity, 0 is gray).

  Args:
    image: float32 (H, W, C); for C = 1 this is the identity.
    factor: scalar >= 0.

  Returns:
    float32 (H, W, C).
  """
  image = jnp.asarray(image, jnp.float32)
  if image.shape[-1] == 1:
    return image
  return _blend(image, rgb_to_grayscale(image), factor)


def adjust_hue(image: ArrayLike, factor: ArrayLike) -> jax.Array:
  """Rotates the hue by `factor` turns (0 and 1 are the identity) through HSV.

  Args:
    image: float32 (H, W, C); for C = 1 this is the identity.
    factor: scalar shift in turns; ColorJitter draws it from [-0.5, 0.5].

  Returns:
    float32 (H, W, C).
  """
  image = jnp.asarray(image, jnp.float32)
  if image.shape[-1] == 1:
    return image
  hsv = rgb_to_hsv(image)
  hue = _wrap(hsv[..., :1] + factor, 1.0)
  return hsv_to_rgb(jnp.concatenate([hue, hsv[..., 1:]], axis=-1))


def color_jitter_from_uniforms(
    uniforms: ArrayLike,
    image: ArrayLike,
    *,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    prob: float = 0.8,
) -> jax.Array:
  """`color_jitter` given its draws: `uniforms` is (>= JITTER_UNIFORMS,) in [0, 1).

  uniforms[0] decides whether to jitter, uniforms[1:5] are the brightness, contrast,
  saturation and hue factors, and the argsort of uniforms[5:9] (over the enabled
  adjustments) is the order, a uniform random permutation. Each draw has a fixed slot,
  so enabling one adjustment does not change the others' draws.
  """
  uniforms = jnp.asarray(uniforms, jnp.float32)
  image = jnp.asarray(image, jnp.float32)
  chroma = image.shape[-1] == 3

  def factor(u, strength):
    return _scale_uniform(u, max(0.0, 1.0 - strength), 1.0 + strength)

  candidates = (
      (brightness > 0, functools.partial(adjust_brightness,
                                         factor=factor(uniforms[1], brightness))),
      (contrast > 0, functools.partial(adjust_contrast, factor=factor(uniforms[2], contrast))),
      (chroma and saturation > 0, functools.partial(
          adjust_saturation, factor=factor(uniforms[3], saturation))),
      (chroma and hue > 0, functools.partial(
          adjust_hue, factor=_scale_uniform(uniforms[4], -hue, hue))),
  )
  enabled = [i for i, (on, _) in enumerate(candidates) if on]
  if not enabled:
    return image
  adjustments = [candidates[i][1] for i in enabled]
  order = jnp.argsort(uniforms[5:9][jnp.asarray(enabled)])
  # Step s applies adjustment k where order[s] == k, as selects. Under vmap a `lax.switch`
  # on the per-image order becomes selects over every branch anyway, and with jax 0.10.2
  # XLA:CPU miscompiled that vmapped switch at batch sizes below 8 (whole images wrong,
  # fine at optimisation level 0); this form is checked against per-image results in
  # tests/augment.
  jittered = image
  for step in range(len(adjustments)):
    for k, adjust in enumerate(adjustments):
      jittered = jnp.where(order[step] == k, adjust(jittered), jittered)
  return _maybe(uniforms[0], prob, jittered, image)


def color_jitter(
    key: ArrayLike,
    image: ArrayLike,
    *,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    prob: float = 0.8,
) -> jax.Array:
  """torchvision `ColorJitter` applied with probability `prob`, as in SimCLR and BYOL.

  Brightness, contrast and saturation factors are drawn from U[max(0, 1 - s), 1 + s] and
  the hue shift from U[-hue, hue]; the adjustments run in a random order per image (a
  uniform random permutation), clipping to [0, 1] after each. Adjustments of strength 0, and
  saturation and hue for C = 1, are left out at trace time, so all-zero strengths give
  the image back exactly.

  SimCLR (arXiv:2002.05709): strengths (0.8, 0.8, 0.8, 0.2) * s, p = 0.8.
  BYOL (arXiv:2006.07733, Table 6): strengths (0.4, 0.4, 0.2, 0.1), p = 0.8.

  Args:
    key: PRNG key.
    image: float32 (H, W, C) in [0, 1].
    brightness, contrast, saturation: strengths >= 0 (Python floats).
    hue: strength in [0, 0.5] (Python float).
    prob: probability of applying the jitter at all; default 0.8.

  Returns:
    float32 (H, W, C) in [0, 1].
  """
  return color_jitter_from_uniforms(
      jax.random.uniform(key, (JITTER_UNIFORMS,)), image, brightness=brightness,
      contrast=contrast, saturation=saturation, hue=hue, prob=prob)


def random_grayscale_from_uniforms(uniforms: ArrayLike, image: ArrayLike, *,
                                   prob: float = 0.2) -> jax.Array:
  """`random_grayscale` given its draw: converts when uniforms[0] < prob."""
  image = jnp.asarray(image, jnp.float32)
  if image.shape[-1] == 1:
    return image
  gray = jnp.broadcast_to(rgb_to_grayscale(image), image.shape)
  return _maybe(uniforms[0], prob, gray, image)


def random_grayscale(key: ArrayLike, image: ArrayLike, *, prob: float = 0.2) -> jax.Array:
  """Replaces every channel by the BT.601 luma with probability `prob` (default 0.2).

  SimCLR (arXiv:2002.05709) and BYOL (arXiv:2006.07733) use p = 0.2. The channel count
  is kept, so the encoder sees the same shape; for C = 1 this is the identity.

  Args:
    key: PRNG key.
    image: float32 (H, W, C).
    prob: probability of converting.

  Returns:
    float32 (H, W, C).
  """
  return random_grayscale_from_uniforms(jax.random.uniform(key, (1,)), image, prob=prob)


# --- blur and solarize ---------------------------------------------------------------


def blur_kernel_size(image_size: int) -> int:
  """SimCLR's blur kernel side: 10% of the image side, made odd, at least 3.

  SimCLR (arXiv:2002.05709, Appendix A) uses 10% of the side; its code rounds
  `image_size // 10` down to an even number and adds 1 (224 -> 23, 32 -> 3). The minimum
  of 3 keeps blur from silently being a no-op on images under 20 pixels.

  Args:
    image_size: side of the (square) image the blur is applied to.

  Returns:
    An odd kernel side >= 3.
  """
  return max(3, 2 * (image_size // 20) + 1)


def _check_kernel_size(kernel_size: int, height: int, width: int) -> None:
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
  if kernel_size // 2 >= min(height, width):
    raise ValueError(
        f"kernel_size={kernel_size} needs reflect padding of {kernel_size // 2} pixels, "
        f"more than a ({height}, {width}) image allows")


def _convolve_axis(image: jax.Array, weights: jax.Array, axis: int) -> jax.Array:
  """1-D convolution of every channel along `axis`, with reflect padding.

  A sum of shifted slices: the kernel is a few taps and its weights are traced (sigma is
  random per image), which vmaps to plain elementwise work instead of a grouped conv.
  """
  radius = weights.shape[0] // 2
  padding = [(0, 0)] * image.ndim
  padding[axis] = (radius, radius)
  padded = jnp.pad(image, padding, mode="reflect")
  length = image.shape[axis]
  return sum(weights[tap] * lax.slice_in_dim(padded, tap, tap + length, axis=axis)
             for tap in range(weights.shape[0]))


def blur_with_sigma(image: ArrayLike, sigma: ArrayLike, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur with a fixed `sigma`, reflect padding at the borders.

  The kernel is exp(-x^2 / (2 sigma^2)) at integer offsets |x| <= kernel_size // 2,
  normalised to sum to 1, applied along height then width, channel by channel.

  Args:
    image: float32 (H, W, C).
    sigma: scalar > 0, may be traced.
    kernel_size: odd kernel side (static); its radius kernel_size // 2 must be less
      than the image side, for reflect padding.

  Returns:
    float32 (H, W, C) in [0, 1].
  """
  image = jnp.asarray(image, jnp.float32)
  _check_kernel_size(kernel_size, image.shape[0], image.shape[1])
  radius = kernel_size // 2
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  weights = jnp.exp(-0.5 * jnp.square(offsets / sigma))
  weights = weights / jnp.sum(weights)
  blurred = _convolve_axis(_convolve_axis(image, weights, axis=0), weights, axis=1)
  return _clip01(blurred)


def gaussian_blur_from_uniforms(
    uniforms: ArrayLike,
    image: ArrayLike,
    *,
    prob: float,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_size: int,
) -> jax.Array:
  """`gaussian_blur` given its draws: blurs when uniforms[0] < prob, sigma from uniforms[1]."""
  image = jnp.asarray(image, jnp.float32)
  drawn_sigma = _scale_uniform(uniforms[1], sigma[0], sigma[1])
  return _maybe(uniforms[0], prob, blur_with_sigma(image, drawn_sigma, kernel_size), image)


def gaussian_blur(
    key: ArrayLike,
    image: ArrayLike,
    *,
    prob: float,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_size: int,
) -> jax.Array:
  """Gaussian blur with sigma ~ U[sigma], applied with probability `prob`.

  SimCLR (arXiv:2002.05709, Appendix A): p = 0.5, sigma in [0.1, 2.0], kernel 10% of the
  image side (`blur_kernel_size`). BYOL (arXiv:2006.07733): p = 1.0 and 0.1 for its two
  views. See `blur_with_sigma` for the kernel and padding.

  Args:
    key: PRNG key.
    image: float32 (H, W, C).
    prob: probability of blurring.
    sigma: (low, high) range of the Gaussian's standard deviation in pixels.
    kernel_size: odd kernel side.

  Returns:
    float32 (H, W, C) in [0, 1].
  """
  return gaussian_blur_from_uniforms(jax.random.uniform(key, (BLUR_UNIFORMS,)), image,
                                     prob=prob, sigma=sigma, kernel_size=kernel_size)


def solarize_from_uniforms(uniforms: ArrayLike, image: ArrayLike, *, prob: float,
                           threshold: float = 0.5) -> jax.Array:
  """`solarize` given its draw: solarizes when uniforms[0] < prob."""
  image = jnp.asarray(image, jnp.float32)
  solarized = jnp.where(image >= threshold, 1.0 - image, image)
  return _maybe(uniforms[0], prob, solarized, image)


def solarize(key: ArrayLike, image: ArrayLike, *, prob: float,
             threshold: float = 0.5) -> jax.Array:
  """Inverts pixels >= `threshold` (x -> 1 - x) with probability `prob`.

  BYOL (arXiv:2006.07733, Table 6): p = 0.0 for view 1 and 0.2 for view 2, threshold 0.5
  (128 of 255).

  Args:
    key: PRNG key.
    image: float32 (H, W, C) in [0, 1].
    prob: probability of solarizing.
    threshold: pixels at or above it are inverted; default 0.5.

  Returns:
    float32 (H, W, C) in [0, 1].
  """
  return solarize_from_uniforms(jax.random.uniform(key, (1,)), image, prob=prob,
                                threshold=threshold)


# --- noise ---------------------------------------------------------------------------


def gaussian_noise(key: ArrayLike, image: ArrayLike, *, std: float,
                   prob: float = 1.0) -> jax.Array:
  """ImageNet-C's Gaussian noise as an augmentation: clip(x + N(0, std^2), 0, 1) per pixel
  and channel, applied with probability `prob`.

  The same formula as `jejax.data.corruptions.gaussian_noise` (ImageNet-C, arXiv:1903.12261;
  std 0.08, 0.12, 0.18, 0.26, 0.38 at severities 1-5), which corrupts a dataset once, on
  the host, in uint8. Here new noise is drawn for every view, on the device, and the
  result stays float (not rounded to 256 levels). Added to the views of a joint-embedding
  method trained on noisy data (arXiv:2505.12477, appendix D.3), it makes two views of an
  image differ along the corruption, which the representation then learns to ignore.

  Args:
    key: PRNG key; split into the draw that decides whether to apply the noise and the
      noise itself, `jax.random.normal(noise_key, image.shape)` for
      `apply_key, noise_key = jax.random.split(key)`.
    image: float32 (H, W, C) in [0, 1].
    std: the noise's standard deviation on the [0, 1] scale, >= 0.
    prob: probability of adding noise.

  Returns:
    float32 (H, W, C) in [0, 1].
  """
  image = jnp.asarray(image, jnp.float32)
  apply_key, noise_key = jax.random.split(key)
  noisy = _clip01(image + std * jax.random.normal(noise_key, image.shape, jnp.float32))
  return _maybe(jax.random.uniform(apply_key), prob, noisy, image)
