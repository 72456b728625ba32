"""Zero-shot classification from class prompts and cross-modal retrieval, on embeddings.

Zero-shot (Radford et al. 2021, sec. 3.1.4): each class is the normalised mean of the
normalised embeddings of its prompts ("a photo of a {}.", ... : CLIP's prompt ensemble),
and a query is given the class whose embedding is most cosine-similar. The same works for
any query modality in the joint space, e.g. speech against text prompts (ImageBind's
emergent zero-shot, Girdhar et al. 2023, sec. 5).

Retrieval across modalities: recall@k, the fraction of queries with a right answer among
their k most cosine-similar gallery items. Which answers are right is a (Q, G) relevance
matrix: by default gallery item i for query i (one partner each); for captions that
describe an image only in part, every image they are true of
(`jejax.data.captions.caption_describes`). The ranking is `lax.top_k`'s (ties: the lower
gallery index first), as in `retrieval.recall_at_k`, which is the special case of
relevance by equal labels. `chance_recall` is what a uniformly random ranking scores.

`evaluate` runs both on a test split through any `Embed` (a trained model's batched
embeddings: `jejax.embed_multimodal.Embedder`), as `protocol.py` does kNN and probes
through an encoder.

>>> classes = class_embeddings(text_prompt_embeddings)  # (C, P, D) -> (C, D)
>>> zero_shot_accuracy(image_embeddings, labels, classes)
>>> cross_modal_recall(image_embeddings, text_embeddings, ks=(1, 5, 10))  # {1: .., 5: ..}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jejax.data.captions import caption_describes
from jejax.data.multimodal import MultimodalSource
from jejax.eval.distances import cosine_similarity
from jejax.numerics import l2_normalize


def class_embeddings(prompt_embeddings: ArrayLike) -> np.ndarray:
  """(C, P, D) embeddings of P prompts per class -> (C, D) unit class embeddings: the
  normalised mean of the normalised prompt embeddings (CLIP's prompt ensembling)."""
  prompts = jnp.asarray(prompt_embeddings, jnp.float32)
  if prompts.ndim != 3:
    raise ValueError(f"prompt embeddings must be (classes, prompts, D), got {prompts.shape}")
  return np.asarray(l2_normalize(jnp.mean(l2_normalize(prompts), axis=1)))


def zero_shot_predict(queries: ArrayLike, classes: ArrayLike) -> np.ndarray:
  """(N, D) query embeddings, (C, D) class embeddings -> (N,) int32 index of the most
  cosine-similar class (the lower index on a tie)."""
  return np.asarray(jnp.argmax(cosine_similarity(queries, classes), axis=1), np.int32)


def zero_shot_accuracy(queries: ArrayLike, labels: ArrayLike, classes: ArrayLike) -> float:
  """The fraction of (N, D) queries whose predicted class is their (N,) label."""
  return float(np.mean(zero_shot_predict(queries, classes) == np.asarray(labels)))


def _relevance(relevant: ArrayLike | None, q: int, g: int) -> np.ndarray:
  if relevant is None:
    if q != g:
      raise ValueError(f"without a relevance matrix query i's answer is gallery item i, "
                       f"so Q must equal G; got Q={q}, G={g}")
    return np.eye(q, dtype=bool)
  relevant = np.asarray(relevant, bool)
  if relevant.shape != (q, g):
    raise ValueError(f"relevant must be (Q, G) = {(q, g)}, got {relevant.shape}")
  return relevant


def cross_modal_recall(queries: ArrayLike, gallery: ArrayLike, ks: Sequence[int] = (1, 5, 10),
                       *, relevant: ArrayLike | None = None) -> dict[int, float]:
  """Recall@k of (Q, D) queries against a (G, D) gallery by cosine similarity.

  Args:
    relevant: (Q, G) bool, the right answers of each query; None: gallery item i for
      query i (Q == G).

  Returns:
    {k: the fraction of queries with a right answer among their top k}; a query with no
    right answer counts as a miss.
  """
  queries, gallery = jnp.asarray(queries, jnp.float32), jnp.asarray(gallery, jnp.float32)
  relevant = _relevance(relevant, queries.shape[0], gallery.shape[0])
  if any(k < 1 or k > gallery.shape[0] for k in ks):
    raise ValueError(f"every k must be in [1, {gallery.shape[0]}], got {tuple(ks)}")
  _, order = jax.lax.top_k(cosine_similarity(queries, gallery), max(ks))  # (Q, k_max)
  hits = np.take_along_axis(relevant, np.asarray(order), axis=1)  # (Q, k_max)
  return {k: float(np.mean(np.any(hits[:, :k], axis=1))) for k in ks}


def chance_recall(relevant: ArrayLike, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
  """Expected recall@k of a uniformly random ranking: the mean over queries of
  1 - C(G - m, k) / C(G, k), m the query's number of right answers ((Q, G) `relevant`);
  k / G with one answer each."""
  relevant = np.asarray(relevant, bool)
  g = relevant.shape[1]
  m = relevant.sum(axis=1).astype(np.float64)  # (Q,)
  out = {}
  for k in ks:
    miss = np.ones_like(m)  # P(none of the m in the top k) = prod_{i<k} (G - m - i) / (G - i)
    for i in range(k):
      miss *= np.clip((g - m - i) / (g - i), 0.0, None)
    out[k] = float(np.mean(1.0 - miss))
  return out


class Embed(Protocol):
  """What `evaluate` needs of a trained model: batched embeddings of each modality."""

  def images(self, images: np.ndarray) -> np.ndarray: ...  # (N, H, W, C) uint8 -> (N, D)

  def texts(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray: ...  # (N, L) -> (N, D)

  def audio(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray: ...  # (N, T)


def prompt_classes(embed: Embed, prompts: dict[str, np.ndarray]) -> np.ndarray:
  """(C, D) class embeddings of `load_class_prompts()`'s (C, P, L) text prompts."""
  c, p, length = prompts["text"].shape
  flat = embed.texts(prompts["text"].reshape(c * p, length),
                     prompts["text_mask"].reshape(c * p, length))
  return class_embeddings(flat.reshape(c, p, -1))


def embed_split(embed: Embed, source: MultimodalSource, *, audio: bool, chunk: int = 1000
                ) -> dict[str, np.ndarray]:
  """'image', 'text' (and 'audio') embeddings (N, D) of a source with text and speech,
  with every example's 'label', 'attributes' and 'mentions', `chunk` examples at a time
  (the full test split's audio is 1.9 GB as float32)."""
  keys = ("label", "attributes", "mentions")
  parts = {k: [] for k in ("image", "text", "audio", *keys)}
  for start in range(0, len(source), chunk):
    batch = source.get_batch(np.arange(start, min(start + chunk, len(source))))
    parts["image"].append(embed.images(batch["image"]))
    parts["text"].append(embed.texts(batch["text"], batch["text_mask"]))
    if audio:
      parts["audio"].append(embed.audio(batch["audio"], batch["audio_length"]))
    for k in keys:
      parts[k].append(batch[k])
  return {k: np.concatenate(v) for k, v in parts.items() if v}


# (query, gallery, relevance): 'query' when the query's caption must be true of the
# gallery image, 'gallery' when the gallery item's caption must be true of the query's
# image. A clip stands for the caption it speaks.
DIRECTIONS = (("image", "text", "gallery"), ("text", "image", "query"),
              ("speech", "text", "gallery"), ("text", "speech", "gallery"),
              ("speech", "image", "query"), ("image", "speech", "gallery"))


def evaluate(embed: Embed, source: MultimodalSource, prompts: dict[str, np.ndarray], *,
             audio: bool, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
  """Zero-shot accuracy from the text prompts and recall@k in both directions on a source
  with text and speech (the test split), for images and, with `audio`, speech; with
  chance beside each.

  A retrieved caption (or clip) is right for an image when it is true of that image
  (`captions.caption_describes`: its class and the levels of the two attributes it
  names); between captions and clips, when the retrieved one is true of the query's image.

  Returns:
    'image_zero_shot', 'speech_zero_shot' (with audio), 'chance_zero_shot';
    '<query>_to_<gallery>_r<k>' and 'chance_<query>_to_<gallery>_r<k>'.
  """
  e = embed_split(embed, source, audio=audio)
  describes = caption_describes(e["label"], e["attributes"], e["mentions"])  # [caption, image]
  classes = prompt_classes(embed, prompts)
  embeddings = {"image": e["image"], "text": e["text"], "speech": e.get("audio")}
  results = {"chance_zero_shot": 1.0 / len(classes)}
  for modality in ("image", "speech") if audio else ("image",):
    results[f"{modality}_zero_shot"] = zero_shot_accuracy(embeddings[modality], e["label"],
                                                          classes)
  for query, gallery, caption_of in DIRECTIONS:
    if embeddings[query] is None or embeddings[gallery] is None:
      continue
    relevant = describes if caption_of == "query" else describes.T  # (Q, G)
    recalls = cross_modal_recall(embeddings[query], embeddings[gallery], ks,
                                 relevant=relevant)
    chance = chance_recall(relevant, ks)
    for k in ks:
      results[f"{query}_to_{gallery}_r{k}"] = recalls[k]
      results[f"chance_{query}_to_{gallery}_r{k}"] = chance[k]
  return results
