"""On-device augmentation: per-image ops and view recipes, and the second views of text
and speech (`sequences`: token deletion, time masking).

Everything here is pure JAX that runs inside the jitted train step, one PRNG key per
image, vmapped over the batch. The host only decodes and batches uint8.

  >>> views = make_views(key, images_uint8, simclr_views(28))  # two (B, 28, 28, C) arrays
"""

from jejax.augment.ops import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    blur_kernel_size,
    blur_with_sigma,
    color_jitter,
    color_jitter_from_uniforms,
    crop_and_resize,
    crop_box_from_uniforms,
    gaussian_blur,
    gaussian_blur_from_uniforms,
    gaussian_noise,
    hsv_to_rgb,
    random_flip,
    random_flip_from_uniforms,
    random_grayscale,
    random_grayscale_from_uniforms,
    random_resized_crop,
    rgb_to_grayscale,
    rgb_to_hsv,
    sample_crop_box,
    solarize,
    solarize_from_uniforms,
)
from jejax.augment.sequences import delete_tokens, time_mask
from jejax.augment.views import (
    ViewConfig,
    augment_batch,
    augment_view,
    byol_views,
    identity_view,
    make_views,
    multi_crop_views,
    simclr_views,
)

__all__ = [
    "ViewConfig",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "augment_batch",
    "augment_view",
    "blur_kernel_size",
    "blur_with_sigma",
    "byol_views",
    "color_jitter",
    "color_jitter_from_uniforms",
    "crop_and_resize",
    "crop_box_from_uniforms",
    "delete_tokens",
    "gaussian_blur",
    "gaussian_blur_from_uniforms",
    "gaussian_noise",
    "hsv_to_rgb",
    "identity_view",
    "make_views",
    "multi_crop_views",
    "random_flip",
    "random_flip_from_uniforms",
    "random_grayscale",
    "random_grayscale_from_uniforms",
    "random_resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "sample_crop_box",
    "simclr_views",
    "solarize",
    "solarize_from_uniforms",
    "time_mask",
]
