"""ImageBind-style binding of text and speech to a frozen image tower.

  python -m jejax.main --config experiments/configs/imagebind.py \
      --workdir runs/multimodal/imagebind  # after clip.py's run in runs/multimodal/clip

Each batch holds (image, caption) and (image, speech) pairs of disjoint images
('fashion_mnist_binding'); the loss is InfoNCE of images with texts plus InfoNCE of
images with speech. The image tower is CLIP's config's run's, frozen
(`model.pretrained`, `optim.frozen`); the text tower (as in clip.py) and the audio ViT
(ViT-micro on 16 x 16 patches of 64-mel spectrograms of the 3 s clips: 72 tokens) train
from scratch. Text logit scale learnt from 1 / 0.07, audio's fixed at 20, as ImageBind.
`--config.imagebind.audio_anchor=text` is the control that binds each clip to its
caption instead. Deviations: ImageBind binds to OpenCLIP ViT-H's frozen image *and* text
encoders, its audio encoder is a ViT-B on 128-mel patches with stride 10, trained for 16
epochs with batch 512+; here 1.5 epochs of batch 256 (40,000 captions, each clip
heard 3 times), and the text tower trains.
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "imagebind"
  c.data.name = "fashion_mnist_binding"
  c.epochs = 1.5
  c.model.pretrained = "runs/multimodal/clip"
  c.optim.frozen = ("^image_tower/",)
  c.model.text.depth = 2
  c.model.text.context_length = 52  # the longest caption is 49 tokens, a prompt 43
  c.optim.weight_decay = 0.1
  c.eval.probe_epochs = 30
  c.eval.probe_random_init = False  # the image tower is CLIP's, frozen: nothing to compare
  return c
