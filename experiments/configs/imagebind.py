"""ImageBind-style binding of speech to the frozen image tower of a CLIP run.

  python -m jejax.main --config experiments/configs/imagebind.py \
      --workdir runs/multimodal/imagebind  # after clip.py's run in runs/multimodal/clip

Each batch holds (image, caption) and (image, speech) pairs of disjoint images
('fashion_mnist_binding'). As ImageBind, the image and text towers are a CLIP model's
(`model.pretrained`: clip.py's run; their projections and logit scale come with them by
name), frozen (`optim.frozen`), so the image-text pair is fixed and
the loss is InfoNCE of the frozen image embeddings with speech: only the audio tower, a
ViT-micro on 16 x 16 patches of 64-mel spectrograms of the 3 s clips (72 tokens), and its
projection train, with the audio logit scale fixed at 20. Speech never meets text.
`--config.imagebind.audio_anchor=text` is the control that binds each clip to the frozen
text embedding of the caption it speaks instead. Deviations: ImageBind's towers are
OpenCLIP ViT-H's and its audio encoder a ViT-B on 128-mel patches with stride 10,
trained 16 epochs at batch 512 and more; here 1.5 epochs of batch 256 (an epoch pairs
the 40,000 captions with the 20,000 clips, so each clip is heard 3 times).
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "imagebind"
  c.data.name = "fashion_mnist_binding"
  c.epochs = 1.5
  c.model.text.depth = 2  # clip.py's text tower
  c.model.text.context_length = 52
  c.model.pretrained = "runs/multimodal/clip"
  c.optim.frozen = ("^image_tower/", "^image_projection/", "^text_tower/",
                    "^text_projection/")
  c.optim.weight_decay = 0.1
  c.eval.probe_epochs = 30
  c.eval.probe_random_init = False  # the image tower is CLIP's, frozen: nothing to compare
  return c
