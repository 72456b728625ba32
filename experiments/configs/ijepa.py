"""I-JEPA on Fashion-MNIST with a small ViT, about 10 minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/ijepa.py --workdir runs/ijepa

The paper's masks (4 target blocks of 15-20% of the image, aspect 0.75-1.5; a context
block of 85-100% with the targets removed), target momentum 0.996 -> 1 (linear), smooth
L1 loss on layer-normed target features, AdamW with weight decay 0.04 -> 0.4 (cosine),
crops of 30-100%, and the target encoder evaluated (average-pooled). Deviations, for 28 px
images and a CPU: the ViT-micro/4 encoder (96 wide, 4 blocks, 3 heads; 7 x 7 = 49 tokens)
instead of ViT-H/14, a predictor 48 wide and 2 deep (the paper's: 384 wide, 12 deep, for
1280-wide ViT-H), 13 of the 49 tokens as context (`ijepa.context_fraction`, see
`jejax.augment.masks`), and the learning-rate schedule over the short run: warmup over
the first 0.3 epoch (the paper's 40 of 300 epochs) from 0.2 x the peak (the reference's
2e-4 -> 1e-3 for a batch of 2048) to the paper's peak rate scaled linearly to the batch,
cosine to 0.
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "ijepa"
  c.epochs = 2.5
  c.model.backbone = "vit"
  c.model.vit.size = "micro"
  c.model.vit.patch_size = 4
  # Fashion-MNIST's pixel mean and std (train split), as the reference codes standardise
  # with ImageNet's.
  c.model.vit.pixel_mean = (0.2860,)
  c.model.vit.pixel_std = (0.3530,)
  c.model.vit.class_token = False
  c.model.vit.pool = "mean"
  c.ijepa.predictor_width = 48
  c.ijepa.predictor_depth = 2
  c.optim.name = "adamw"
  c.optim.learning_rate = 1e-3
  c.optim.base_batch_size = 2048
  c.optim.warmup_epochs = 0.3
  c.optim.warmup_start_fraction = 0.2  # the reference's start_lr 2e-4 for lr 1e-3
  c.optim.weight_decay = 0.04
  c.optim.weight_decay_end = 0.4
  c.eval.encoder = "target"
  return c
