"""MAE on Fashion-MNIST with a small ViT, about 10 minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/mae.py --workdir runs/mae

The paper's mask ratio 0.75, normalised-pixel targets, crops of 20-100% with flips, AdamW
(betas 0.9, 0.95; weight decay 0.05; base lr 1.5e-4 x batch / 256), and the class token
evaluated. Deviations, for 28 px images and a CPU: the ViT-micro/4 encoder (96 wide, 4
blocks, 3 heads, 49 tokens, of which int(49 x 0.25) = 12 are kept) instead of ViT-L/16,
a decoder 64 wide, 2 deep, 4 heads (the paper's: 512, 8, 16), and the schedule over the
short run: warmup over the first 0.3 epoch (the paper's 40 of 800), cosine to 0.
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "mae"
  c.epochs = 2.5
  c.model.backbone = "vit"
  c.model.vit.size = "micro"
  c.model.vit.patch_size = 4
  # Fashion-MNIST's pixel mean and std (train split), as the reference codes standardise
  # with ImageNet's.
  c.model.vit.pixel_mean = (0.2860,)
  c.model.vit.pixel_std = (0.3530,)
  c.model.vit.class_token = True
  c.model.vit.pool = "cls"
  c.mae.decoder_width = 64
  c.mae.decoder_depth = 2
  c.mae.decoder_heads = 4
  c.optim.name = "adamw"
  c.optim.learning_rate = 1.5e-4
  c.optim.base_batch_size = 256
  c.optim.b2 = 0.95
  c.optim.warmup_epochs = 0.3
  c.optim.weight_decay = 0.05
  return c
