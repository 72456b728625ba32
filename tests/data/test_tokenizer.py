"""Byte-level tokenizer: round trips, padding and mask, length errors, truncation."""

import numpy as np
import pytest

from jejax.data import tokenizer


def test_round_trip_ascii_and_utf8():
  texts = ["a photo of a dark small sandal", "", "café ☕ naïve", "x" * 14]
  tokens, mask = tokenizer.encode(texts[1:], max_length=18)  # "café ☕ naïve": 16 bytes
  assert tokens.shape == mask.shape == (3, 18) and tokens.dtype == np.int32
  assert tokenizer.decode(tokens) == texts[1:]
  assert tokens.max() < tokenizer.VOCAB_SIZE
  with pytest.raises(ValueError, match="text 0 is 30 bytes"):
    tokenizer.encode(texts[:1], max_length=16)


def test_layout_and_padding_mask():
  tokens, mask = tokenizer.encode(["ab", "abcd"], max_length=8)
  # [begin, 'a' + 3, 'b' + 3, end, pad...]
  np.testing.assert_array_equal(tokens[0], [1, 97 + 3, 98 + 3, 2, 0, 0, 0, 0])
  np.testing.assert_array_equal(mask.sum(1), [4, 6])
  np.testing.assert_array_equal(mask, tokens != tokenizer.PAD_ID)
  assert (mask[:, 0]).all() and not mask[0, 4:].any()


def test_utf8_counts_bytes_not_characters():
  tokens, mask = tokenizer.encode(["é"], max_length=4)  # two bytes
  assert mask.sum() == 4 and tokens[0, -1] == tokenizer.END_ID
  with pytest.raises(ValueError, match="2 bytes"):
    tokenizer.encode(["é"], max_length=3)


def test_truncate_keeps_the_end_token():
  tokens, mask = tokenizer.encode(["abcdefgh", "aé"], max_length=4, truncate=True)
  assert tokenizer.decode(tokens[:1]) == ["ab"]
  assert (tokens[:, -1] == tokenizer.END_ID).all() and mask.all()
  assert tokenizer.decode(tokens[1:]) == ["a\ufffd"]  # half of é


def test_bad_arguments():
  with pytest.raises(TypeError, match="sequence of strings"):
    tokenizer.encode("a caption", max_length=16)
  with pytest.raises(ValueError, match="at least begin and end"):
    tokenizer.encode(["a"], max_length=1)
  with pytest.raises(ValueError, match=r"\(n, length\)"):
    tokenizer.decode(np.zeros(4, np.int32))
