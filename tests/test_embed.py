"""The embed command: a checkpoint of a (tiny) main-job run -> embeddings, plots, summary;
a checkpoint of another model is refused."""

import json
import pathlib

import numpy as np
import pytest

from jejax import config as config_lib
from jejax import embed
from jejax.train import loop


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A 2-step SimCLR run of the tiny test model, as the main job leaves it on disk;
  also the final state and the run, for independent references."""
  c = config_lib.load(pathlib.Path(__file__).parents[1] / "experiments/configs/simclr.py")
  c.num_devices, c.batch_size = 2, 16
  c.model.convnet.widths, c.model.projector_hidden, c.model.embed_dim = (8, 16), (32,), 16
  c.eval.every_epochs, c.progress_bar, c.num_steps = 0.0, False, 2
  workdir = tmp_path_factory.mktemp("run")
  run, state, _ = loop.train(c, workdir)
  return workdir, run, state


def test_embed_writes_the_features_of_the_checkpoint(trained_run, tmp_path):
  workdir, run, state = trained_run
  summary = embed.embed(workdir, out=tmp_path, limit=300, num_neighbours=3,
                        retrieval_size=200)
  saved = np.load(tmp_path / "embeddings.npz")
  expected, labels = run.features(state, run.test_source, limit=300)
  np.testing.assert_allclose(saved["features"], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(saved["labels"], labels)
  np.testing.assert_array_equal(saved["labels"], run.test_source.get_batch(np.arange(300))["label"])
  assert int(saved["step"]) == 2 == summary["checkpoint_step"]
  for name in ("class_similarity.png", "neighbours.png", "summary.json"):
    assert (tmp_path / name).stat().st_size > 0
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  assert on_disk["num_examples"] == 300 and on_disk["retrieval_size"] == 200
  assert 0 <= on_disk["recall_at_1"] <= on_disk["recall_at_5"] <= on_disk["recall_at_10"] <= 1


def test_a_checkpoint_of_another_model_is_refused(trained_run, tmp_path, capsys):
  workdir, _, _ = trained_run
  other = json.loads((workdir / "config.json").read_text())
  other["model"]["convnet"]["widths"] = [8, 24]  # the second conv stage is wider
  config_path = tmp_path / "other.json"
  config_path.write_text(json.dumps(other))
  with pytest.raises(embed.CheckpointMismatchError, match="does not match the config") as e:
    embed.embed(workdir, config_path=config_path, out=tmp_path / "out")
  assert "params/backbone/Conv_1/kernel" in str(e.value)
  assert not (tmp_path / "out").exists()
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_info:  # the command line: a message, no traceback
    embed.main(["--workdir", str(workdir), "--config", str(config_path)])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: the checkpoint at") and "arrays differ" in err
  assert "\nhint: " in err and "Traceback" not in err


def test_a_missing_checkpoint_is_a_clear_error(trained_run, tmp_path):
  workdir, _, _ = trained_run
  with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
    embed.embed(workdir, checkpoint_dir=tmp_path / "nothing", out=tmp_path / "out")


def test_config_round_trips_through_json(trained_run):
  workdir, run, _ = trained_run
  restored = config_lib.validate(config_lib.load(workdir / "config.json"))
  assert restored.to_json_best_effort() == run.config.to_json_best_effort()
  assert restored.model.convnet.widths == (8, 16)  # a tuple again, as the model expects
  with pytest.raises(ValueError, match="model.colour is unknown"):
    config_lib.config_from_dict({"model": {"colour": 1}})


def test_class_similarity_is_the_mean_pairwise_cosine():
  rng = np.random.default_rng(0)
  features, labels = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
  unit = features / np.linalg.norm(features, axis=1, keepdims=True)
  cosine = unit @ unit.T
  expected = np.array([[cosine[np.ix_(labels == a, labels == b)].mean() for b in range(3)]
                       for a in range(3)])
  np.testing.assert_allclose(embed.class_similarity(features, labels, 3), expected, rtol=1e-10)


def test_nearest_neighbours_leave_the_query_out():
  features = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 0.3], [-1.0, 0.0]])
  found = embed.nearest_neighbours(features.astype(np.float32), np.array([0, 2]), k=2)
  np.testing.assert_array_equal(found, [[1, 3], [3, 1]])
