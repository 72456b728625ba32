"""Byte-level tokenizer: UTF-8 bytes as tokens, plus pad, begin and end.

Why bytes: there is no vocabulary file to ship, train or download (the machines that
build jejax reach only package registries), any string encodes without unknown tokens,
and the captions here are short ASCII, so a byte is a character and a caption of 62
characters is 64 tokens with begin and end. ByT5 (Xue et al. 2022, arXiv:2105.13626)
shows byte-level models are competitive on short, noisy text; the cost, longer sequences,
is small at caption length.

Token ids: 0 pad, 1 begin, 2 end, 3 + b for byte b, so `VOCAB_SIZE` is 259. A sequence
is [begin, bytes..., end, pad...], with a mask that is True on begin, bytes and end.

Example:
  >>> tokens, mask = encode(['a dark sandal'], max_length=16)
  >>> tokens[0, :4], int(mask[0].sum())
  (array([ 1, 100,  35, 103], dtype=int32), 15)
  >>> decode(tokens)
  ['a dark sandal']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD_ID = 0
BEGIN_ID = 1
END_ID = 2
BYTE_OFFSET = 3
VOCAB_SIZE = BYTE_OFFSET + 256


def encode(texts: Sequence[str], max_length: int, *,
           truncate: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Texts -> tokens (n, max_length) int32 and mask (n, max_length) bool.

  Args:
    texts: n strings.
    max_length: tokens per sequence, begin and end included (at least 2).
    truncate: cut a text whose UTF-8 bytes do not fit (keeping the end token; a
      multi-byte character may be cut in two). Otherwise such a text is an error.

  Raises:
    ValueError: a text too long for `max_length` without `truncate`, naming it.
  """
  if max_length < 2:
    raise ValueError(f"max_length {max_length}: a sequence needs at least begin and end")
  if isinstance(texts, str):
    raise TypeError("encode takes a sequence of strings; wrap a single text in a list")
  tokens = np.full((len(texts), max_length), PAD_ID, np.int32)
  room = max_length - 2
  for i, text in enumerate(texts):
    data = text.encode("utf-8")
    if len(data) > room:
      if not truncate:
        raise ValueError(
            f"text {i} is {len(data)} bytes, more than the {room} that fit in "
            f"max_length={max_length} with begin and end: {text[:80]!r}")
      data = data[:room]
    tokens[i, 0] = BEGIN_ID
    tokens[i, 1:1 + len(data)] = np.frombuffer(data, np.uint8).astype(np.int32) + BYTE_OFFSET
    tokens[i, 1 + len(data)] = END_ID
  return tokens, tokens != PAD_ID


def decode(tokens: np.ndarray) -> list[str]:
  """(n, length) tokens -> n strings: the bytes between begin and the first end (or the
  row's end), decoded as UTF-8 (a character cut by truncation becomes U+FFFD)."""
  tokens = np.asarray(tokens)
  if tokens.ndim != 2:
    raise ValueError(f"tokens must be (n, length), got shape {tokens.shape}")
  texts = []
  for row in tokens:
    ends = np.flatnonzero(row == END_ID)
    row = row[:ends[0]] if len(ends) else row
    data = row[row >= BYTE_OFFSET] - BYTE_OFFSET
    texts.append(bytes(data.astype(np.uint8)).decode("utf-8", errors="replace"))
  return texts
