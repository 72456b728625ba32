"""View recipes as data, and the batched augmentation that turns a uint8 batch into views.

A `ViewConfig` is a frozen, hashable dataclass, so it is a static argument of the jitted
train step: the Python numbers in it decide at trace time which ops exist in the program.
A method asks for its views as a tuple of configs (`simclr_views`, `byol_views`) and calls
`make_views` on the device batch inside the step.

Recipes are starting points; change a field at the call site with `dataclasses.replace`,
which validates again:

  >>> view1, view2 = byol_views(32)
  >>> recipes = (dataclasses.replace(view1, blur_prob=0.5), view2)
  >>> views = make_views(key, images_uint8, recipes)  # two (B, 32, 32, C) float32 arrays

References:
  SimCLR: Chen et al., arXiv:2002.05709, Appendix A.
  BYOL: Grill et al., arXiv:2006.07733, Appendix B, Table 6.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jejax.augment import ops


def _check_prob(name: str, value: float) -> None:
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def _check_non_negative(name: str, value: float) -> None:
  if not value >= 0.0:
    raise ValueError(f"{name} must be >= 0, got {value}")


def _check_interval(name: str, interval: tuple[float, float], *, high: float) -> None:
  """0 < low <= high <= `high`."""
  if len(interval) != 2 or not 0.0 < interval[0] <= interval[1] <= high:
    raise ValueError(f"{name} must be (low, high) with 0 < low <= high <= {high}, "
                     f"got {interval}")


@dataclasses.dataclass(frozen=True)
class ViewConfig:
  """How one view of an image is made; the defaults are no augmentation at all.

  The pipeline (`augment_view`) is the SimCLR/BYOL order: random resized crop to
  `out_size` -> horizontal flip -> colour jitter -> grayscale -> Gaussian blur ->
  solarize, then Gaussian noise (off in the published recipes). With `crop_scale=(1, 1)`
  the crop is the whole image (no candidate box of another aspect ratio fits, so the
  whole-image fallback is taken).

  Attributes:
    out_size: side of the square output view in pixels.
    crop_scale: (low, high) area fraction of the random resized crop, 0 < low <= high <= 1.
    crop_ratio: (low, high) aspect ratio (width / height) of the crop.
    flip_prob: probability of a horizontal flip.
    brightness, contrast, saturation: colour jitter strengths, >= 0.
    hue: colour jitter hue strength in [0, 0.5] (turns).
    jitter_prob: probability of applying the colour jitter.
    grayscale_prob: probability of converting to grayscale.
    blur_prob: probability of a Gaussian blur; the kernel is `ops.blur_kernel_size(out_size)`.
    blur_sigma: (low, high) range of the blur's sigma in pixels.
    solarize_prob: probability of solarizing (threshold 0.5).
    noise_prob: probability of adding Gaussian noise (`ops.gaussian_noise`), last, at the
      view's resolution.
    noise_std: the noise's standard deviation on the [0, 1] scale (ImageNet-C's severities
      1-5: 0.08, 0.12, 0.18, 0.26, 0.38).
  """

  out_size: int
  crop_scale: tuple[float, float] = (1.0, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.0
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0
  jitter_prob: float = 0.0
  grayscale_prob: float = 0.0
  blur_prob: float = 0.0
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  solarize_prob: float = 0.0
  noise_prob: float = 0.0
  noise_std: float = 0.0

  def __post_init__(self):
    # Lists would make the config unhashable, and then unusable as a static jit argument.
    for name in ("crop_scale", "crop_ratio", "blur_sigma"):
      object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
    if isinstance(self.out_size, bool) or not isinstance(self.out_size, int) or (
        self.out_size <= 0):
      raise ValueError(f"out_size must be a positive int, got {self.out_size!r}")
    _check_interval("crop_scale", self.crop_scale, high=1.0)
    _check_interval("crop_ratio", self.crop_ratio, high=float("inf"))
    _check_interval("blur_sigma", self.blur_sigma, high=float("inf"))
    for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob",
                 "noise_prob"):
      _check_prob(name, getattr(self, name))
    for name in ("brightness", "contrast", "saturation", "hue", "noise_std"):
      _check_non_negative(name, getattr(self, name))
    if self.hue > 0.5:
      raise ValueError(f"hue must be in [0, 0.5] (a shift of half a turn), got {self.hue}")


def _to_float(image: ArrayLike) -> jax.Array:
  """uint8 in [0, 255] -> float32 in [0, 1]; float images are taken to be in [0, 1]."""
  image = jnp.asarray(image)
  if image.dtype == jnp.uint8:
    return image.astype(jnp.float32) / 255.0
  return image.astype(jnp.float32)


def augment_view(key: ArrayLike, image: ArrayLike, cfg: ViewConfig) -> jax.Array:
  """One view of one image: crop -> flip -> jitter -> grayscale -> blur -> solarize ->
  noise.

  The order of SimCLR (arXiv:2002.05709, Appendix A) and BYOL (arXiv:2006.07733,
  Appendix B). Ops whose probability is 0 are left out at trace time, so
  `identity_view` costs one (exact) resize.

  Args:
    key: PRNG key for this image.
    image: (H, W, C) uint8 in [0, 255] or float in [0, 1], C = 1 or 3.
    cfg: the view recipe (static).

  Returns:
    float32 (cfg.out_size, cfg.out_size, C) in [0, 1].
  """
  image = _to_float(image)
  height, width, _ = image.shape
  # All the view's randomness in one draw, one row per stage: one threefry call instead
  # of six, which halves the compile time on CPU (see `ops`). A stage reads its row
  # whether or not the others run, so switching one off leaves the rest unchanged.
  crop_uniforms, *stage_uniforms = jax.random.uniform(key, (6, ops.MAX_UNIFORMS))
  box = ops.crop_box_from_uniforms(crop_uniforms, height, width, scale=cfg.crop_scale,
                                   ratio=cfg.crop_ratio)
  view = ops.crop_and_resize(image, box, (cfg.out_size, cfg.out_size))
  stages = (
      (cfg.flip_prob, functools.partial(ops.random_flip_from_uniforms, prob=cfg.flip_prob)),
      (cfg.jitter_prob, functools.partial(
          ops.color_jitter_from_uniforms, brightness=cfg.brightness, contrast=cfg.contrast,
          saturation=cfg.saturation, hue=cfg.hue, prob=cfg.jitter_prob)),
      (cfg.grayscale_prob, functools.partial(ops.random_grayscale_from_uniforms,
                                             prob=cfg.grayscale_prob)),
      (cfg.blur_prob, functools.partial(
          ops.gaussian_blur_from_uniforms, prob=cfg.blur_prob, sigma=cfg.blur_sigma,
          kernel_size=ops.blur_kernel_size(cfg.out_size))),
      (cfg.solarize_prob, functools.partial(ops.solarize_from_uniforms,
                                            prob=cfg.solarize_prob)),
  )
  for uniforms, (prob, stage) in zip(stage_uniforms, stages):
    if prob > 0:
      view = stage(uniforms, view)
  if cfg.noise_prob > 0:
    # Noise needs a normal per pixel, not a few uniforms: a key of its own, folded from
    # the view's, so the draws above stay those of a recipe without noise.
    view = ops.gaussian_noise(jax.random.fold_in(key, 1), view, std=cfg.noise_std,
                              prob=cfg.noise_prob)
  return view


def augment_batch(key: ArrayLike, images: ArrayLike, cfg: ViewConfig) -> jax.Array:
  """One view of every image of a batch, one PRNG key per image.

  The keys are `jax.random.split(key, B)`: image i gets key i whatever the sharding of
  the batch, so a batch split over any number of devices gets the views it would get on
  one. Jit it with `cfg` static, e.g.
  `jax.jit(augment_batch, static_argnames="cfg")`, or call it inside the train step.

  Args:
    key: PRNG key for the batch.
    images: (B, H, W, C) uint8 or float in [0, 1], C = 1 or 3.
    cfg: the view recipe (static).

  Returns:
    float32 (B, cfg.out_size, cfg.out_size, C) in [0, 1].
  """
  images = jnp.asarray(images)
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(augment_view, in_axes=(0, 0, None))(keys, images, cfg)


def make_views(key: ArrayLike, images: ArrayLike,
               recipes: tuple[ViewConfig, ...]) -> tuple[jax.Array, ...]:
  """One augmented view of the batch per recipe, each from an independent key.

  View v uses `jax.random.fold_in(key, v)`, so adding a third view leaves the first two
  unchanged.

  Args:
    key: PRNG key for the step.
    images: (B, H, W, C) uint8 or float in [0, 1].
    recipes: one `ViewConfig` per view (static), e.g. `simclr_views(32)`.

  Returns:
    A tuple of float32 (B, out_size_v, out_size_v, C) arrays, one per recipe.
  """
  return tuple(augment_batch(jax.random.fold_in(key, v), images, cfg)
               for v, cfg in enumerate(recipes))


def identity_view(size: int) -> ViewConfig:
  """No augmentation: the whole image at `size` pixels, every probability 0 (evaluation).

  For an image that is already `size` x `size` the view is the image itself (as float32).
  """
  return ViewConfig(out_size=size)


def simclr_views(size: int, *, color_strength: float = 1.0,
                 blur: bool = True) -> tuple[ViewConfig, ViewConfig]:
  """The two identical SimCLR views (Chen et al., arXiv:2002.05709, Appendix A).

  Random resized crop (area 0.08-1, ratio 3/4-4/3), flip p = 0.5, colour jitter of
  strengths (0.8, 0.8, 0.8, 0.2) * `color_strength` with p = 0.8, grayscale p = 0.2,
  Gaussian blur p = 0.5 (sigma 0.1-2, kernel 10% of `size`), no solarize. SimCLR leaves
  the blur out on CIFAR-10 (`blur=False`) and uses `color_strength` 0.5 there.
  Override fields with `dataclasses.replace`.

  Args:
    size: side of the output views.
    color_strength: SimCLR's colour distortion strength s; default 1.0.
    blur: whether to blur (p = 0.5); default True.

  Returns:
    (view, view).
  """
  view = ViewConfig(
      out_size=size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
      brightness=0.8 * color_strength, contrast=0.8 * color_strength,
      saturation=0.8 * color_strength, hue=0.2 * color_strength, jitter_prob=0.8,
      grayscale_prob=0.2, blur_prob=0.5 if blur else 0.0, blur_sigma=(0.1, 2.0))
  return view, view


def byol_views(size: int) -> tuple[ViewConfig, ViewConfig]:
  """The two asymmetric BYOL views (Grill et al., arXiv:2006.07733, Appendix B, Table 6).

  Both: random resized crop (area 0.08-1, ratio 3/4-4/3), flip p = 0.5, colour jitter
  (0.4, 0.4, 0.2, 0.1) with p = 0.8, grayscale p = 0.2, blur sigma 0.1-2. View 1 always
  blurs and never solarizes; view 2 blurs with p = 0.1 and solarizes with p = 0.2.
  Override fields with `dataclasses.replace`.

  Args:
    size: side of the output views.

  Returns:
    (view 1, view 2).
  """
  common = ViewConfig(
      out_size=size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
      brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, jitter_prob=0.8,
      grayscale_prob=0.2, blur_sigma=(0.1, 2.0))
  return (dataclasses.replace(common, blur_prob=1.0, solarize_prob=0.0),
          dataclasses.replace(common, blur_prob=0.1, solarize_prob=0.2))


def multi_crop_views(global_views: tuple[ViewConfig, ...], *, num_small: int,
                     small_size: int, small_crop_scale: tuple[float, float]
                     ) -> tuple[ViewConfig, ...]:
  """Multi-crop (SwAV, Caron et al. 2020, sec. 3.2; DINO): the global views, then
  `num_small` crops of a small area at a lower resolution.

  The small crops take the first global view's augmentation with their own size and
  crop scale. SwAV's ImageNet layout is 2 x 224 px crops of area (0.14, 1) and
  6 x 96 px of (0.05, 0.14); DINO's is 2 x 224 of (0.4, 1) and 8 x 96 of (0.05, 0.4).
  The train step runs one forward pass per resolution, so it compiles once per layout.

  Returns:
    The global views followed by the small ones.
  """
  if num_small < 0:
    raise ValueError(f"num_small must be >= 0, got {num_small}")
  small = dataclasses.replace(global_views[0], out_size=small_size,
                              crop_scale=small_crop_scale)
  return tuple(global_views) + (small,) * num_small
