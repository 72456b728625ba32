"""The main job end to end on a tiny model, and bad input refused before training."""

import json

import numpy as np
import pytest

from jejax import job
from jejax.config import base_config
from jejax.data import UnknownDatasetError, corrupt, get_source
from jejax.train import loop
from jejax.train.run import Run


def tiny_config():
  c = base_config()
  c.num_steps = 4
  c.batch_size = 64
  c.model.convnet.widths = (8, 16)
  c.model.projector_hidden = (32,)
  c.model.embed_dim = 16
  c.eval.every_epochs = 0.0
  c.eval.probe_epochs = 2
  c.log_every_steps = 2
  c.progress_bar = False
  return c


def test_train_and_evaluate_writes_every_output(tmp_path, capsys):
  results = job.train_and_evaluate(tiny_config(), tmp_path)
  for name in ["config.json", "metrics.jsonl", "summary.json", "training.png",
               "embeddings_2d.png"]:
    assert (tmp_path / name).stat().st_size > 0, name
  assert (tmp_path / "checkpoints" / "4").is_dir()
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 4]
  assert json.loads((tmp_path / "summary.json").read_text()) == pytest.approx(results)
  assert results["steps"] == 4
  # Accuracies are over the full 10-class test split: within [0, 1] and far from a
  # constant predictor (0.1) only if features carry class information, which even a
  # random ConvNet's do on Fashion-MNIST.
  for key in ["knn_accuracy", "linear_probe_accuracy", "random_init_linear_probe_accuracy"]:
    assert 0.3 < results[key] <= 1.0, key
  assert 1.0 <= results["effective_rank"] <= results["feature_dim"]
  out = capsys.readouterr().out
  assert "linear_probe_accuracy" in out and "random_init_linear_probe_accuracy" in out


def test_bad_config_is_refused_before_anything_is_written(tmp_path):
  c = tiny_config()
  c.simclr.temperature = -0.1
  with pytest.raises(ValueError, match="simclr.temperature"):
    loop.train(c, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_unknown_dataset_is_refused_before_training(tmp_path):
  c = tiny_config()
  c.data.name = "cifar_11"
  with pytest.raises(UnknownDatasetError, match="cifar10"):
    loop.train(c, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_a_corrupted_run_trains_and_evaluates_on_corrupted_splits(tmp_path):
  c = tiny_config()
  c.data.corruption, c.data.severity = "gaussian_noise", 3
  run = Run(c, tmp_path)
  indices = np.arange(5)
  for split, source, seed in (("train", run.train_source, c.seed),
                              ("test", run.test_source, c.seed + 1)):
    clean = get_source("fashion_mnist", split).get_batch(indices)["image"]
    expected = corrupt(clean, "gaussian_noise", 3, seed=seed, indices=indices)
    np.testing.assert_array_equal(source.get_batch(indices)["image"], expected)
    assert np.abs(expected.astype(int) - clean).mean() > 10  # really corrupted
