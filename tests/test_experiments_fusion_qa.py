"""experiments/fusion_qa.py: each row's model sees exactly its modalities (the baselines are
blind to the other input), a row trains and writes its result, a finished row is not
trained again, and a workdir of other settings is refused."""

import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import fusion_qa  # noqa: E402

from jejax.data import qa  # noqa: E402

TINY = dict(fusion_qa.DEFAULTS, steps=2, batch_size=8, vit="nano/4", text_width=16,
            text_depth=1, fusion_width=16, images=None)


def _sources():
  """QA sources of random images (each class present): 100 train, 20 test, 2 questions each."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (120, 28, 28)).astype(np.uint8)
  labels = np.arange(120) % 10
  return qa.qa_sources(images[:100], labels[:100], images[100:], labels[100:], per_image=2)


@pytest.mark.parametrize("row", list(fusion_qa.ROWS))
def test_each_row_sees_exactly_its_modalities(row):
  train, _ = _sources()
  batch = train.get_batch(np.arange(4))
  model = fusion_qa.build_model(row, TINY)
  inputs = fusion_qa._inputs(batch)
  params = model.init(jax.random.key(0), *inputs)
  logits = model.apply(params, *inputs)
  assert logits.shape == (4, len(qa.ANSWERS))
  other_image = model.apply(params, 255 - batch["image"], *inputs[1:])
  other_question = model.apply(params, batch["image"], *fusion_qa._inputs(
      train.get_batch(np.arange(4, 8)))[1:])
  sees = {"image": np.max(np.abs(other_image - logits)) > 1e-4,
          "text": np.max(np.abs(other_question - logits)) > 1e-4}
  assert {m for m, seen in sees.items() if seen} == set(fusion_qa.ROWS[row][1])


def test_rows_are_trained_once_and_other_settings_refused(tmp_path, monkeypatch):
  sources = _sources()
  monkeypatch.setattr(fusion_qa, "load_sources", lambda settings, images: sources)
  argv = ["fusion_qa.py", "--rows", "attention_pool", "--steps", "2", "--batch-size", "8",
          "--text-width", "16", "--text-depth", "1", "--fusion-width", "16",
          "--workdir", str(tmp_path), "--no-readme"]
  monkeypatch.setattr(sys, "argv", argv)
  fusion_qa.main()
  result = json.loads((tmp_path / "attention_pool.json").read_text())
  assert result["steps"] == 2 and 0 <= result["test_accuracy"] <= 1
  assert np.isfinite(result["final_train_loss"])
  assert all(0 < result[f"image_weight_{kind}"] < 1 for kind in qa.QUESTION_KINDS)
  table = (tmp_path / "results.md").read_text()
  assert "| attention_pool | attention_pool | image + text |" in table
  assert "mean weight on the image" in table
  assert "lookup table, question only" in table

  def no_training(*args):
    raise AssertionError("a finished row was trained again")
  monkeypatch.setattr(fusion_qa, "train_row", no_training)
  fusion_qa.main()
  monkeypatch.setattr(sys, "argv", [a if a != "2" else "3" for a in argv])
  with pytest.raises(SystemExit, match="other settings"):
    fusion_qa.main()
