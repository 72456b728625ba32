"""Where an I-JEPA encoder's information is: per-token features against their mean.

  python experiments/ijepa_tokens.py --workdir runs/ijepa       # a finished I-JEPA run
  python experiments/ijepa_tokens.py --workdir runs/ijepa --train-limit 20000

Issue 10's I-JEPA probes no better than its encoder at random initialisation on
Fashion-MNIST when the features are the mean of its output tokens (the paper's protocol,
and the results table's). This asks why, on the run's evaluated encoder (`eval.encoder`)
and the same encoder at its initialisation (the run's seed), both on the same images:

- the linear probe and kNN on the mean-pooled tokens (the table's features);
- the linear probe on all tokens concatenated (N x D features): what the encoder keeps
  of the image, before pooling discards it;
- how much of the tokens' variance is position rather than image content: the variance
  over tokens and images of each channel, split into the part explained by the token's
  position (the variance of the per-position means) and the rest. A predictor that can
  meet its targets from the position alone would push the first part up;
- the linear probe on the pixels (standardised by the probe, as every feature), the
  reference point a frozen encoder's features are compared with.

Every probe is `jejax.eval.linear_probe` with the run's probe settings, trained on the
first `--train-limit` train images (all by default) and tested on the whole test split.
Prints a table and writes <workdir>/ijepa_tokens.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's jejax
from jejax import config as config_lib  # noqa: E402
from jejax.embed import restore_checkpoint  # noqa: E402
from jejax.eval.features import extract_features  # noqa: E402
from jejax.eval.knn import knn_accuracy  # noqa: E402
from jejax.eval.linear_probe import linear_probe  # noqa: E402
from jejax.train.run import Run  # noqa: E402


def encoder_tokens(model, variables, images):
  """(b, H, W, C) images in [0, 1] -> (b, N * D): the encoder's output tokens (after its
  final norm, before pooling), flattened in grid order."""
  tokens = model.apply({"params": variables["params"]}, images,
                       method=lambda m, x: m.encoder.transform(m.encoder.embed(x)))
  return tokens.reshape(tokens.shape[0], -1)


def position_share(tokens: np.ndarray) -> float:
  """Of the total variance of (n, N, D) tokens over images and positions, summed over
  channels, the share explained by position: sum_d Var_t(mean_n tokens[:, t, d]) over
  sum_d Var_(n,t)(tokens[:, :, d]) (the between-group part of the law of total variance,
  with positions as groups of equal size)."""
  total = tokens.reshape(-1, tokens.shape[-1]).var(axis=0).sum()
  between = tokens.mean(axis=0).var(axis=0).sum()
  return float(between / total)


def analyse(tokens_train, y_train, tokens_test, y_test, *, probe, knn) -> dict[str, float]:
  """The probes, kNN and position share of one encoder's (n, N, D) tokens."""
  pooled_train, pooled_test = tokens_train.mean(axis=1), tokens_test.mean(axis=1)
  flat_train = tokens_train.reshape(len(tokens_train), -1)
  flat_test = tokens_test.reshape(len(tokens_test), -1)
  return {
      "probe_mean_pooled": linear_probe(pooled_train, y_train, pooled_test, y_test,
                                        **probe)["test_accuracy"],
      "knn_mean_pooled": knn_accuracy(pooled_train, y_train, pooled_test, y_test, **knn),
      "probe_all_tokens": linear_probe(flat_train, y_train, flat_test, y_test,
                                       **probe)["test_accuracy"],
      "position_share_of_variance": position_share(tokens_test),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, type=Path,
                      help="a finished I-JEPA run: its config.json and checkpoints")
  parser.add_argument("--train-limit", type=int, default=None,
                      help="train the probes on the first this many train images")
  args = parser.parse_args()
  start = time.perf_counter()
  c = config_lib.validate(config_lib.load(args.workdir / "config.json"))
  if c.method != "ijepa":
    raise SystemExit(f"{args.workdir} is a {c.method!r} run; this reads I-JEPA's encoder")
  run = Run(c, args.workdir)
  trained, step = restore_checkpoint(run, args.workdir / "checkpoints")
  encode = functools.partial(encoder_tokens, run.method.model)
  grid = run.method.grid
  e = c.eval
  probe = dict(num_classes=run.train_source.num_classes, epochs=e.probe_epochs,
               learning_rate=e.probe_learning_rate, seed=c.seed)
  knn = dict(k=e.knn_k, temperature=e.knn_temperature,
             num_classes=run.train_source.num_classes)

  def tokens(state, source, limit):
    variables = run.method.eval_variables(state, e.encoder)
    flat, labels = extract_features(encode, variables, source, run.mesh,
                                    batch_size=e.batch_size, limit=limit)
    return flat.reshape(len(flat), grid[0] * grid[1], -1), labels

  results = {"workdir": str(args.workdir), "step": step, "encoder": e.encoder,
             "grid": list(grid), "train_images": args.train_limit or len(run.train_source)}
  for name, state in (("random_init", run.initial_state()), ("trained", trained)):
    train_tokens, y_train = tokens(state, run.train_source, args.train_limit)
    test_tokens, y_test = tokens(state, run.test_source, None)
    results[name] = analyse(train_tokens, y_train, test_tokens, y_test, probe=probe, knn=knn)
    print(f"{name}: {results[name]}", flush=True)
  train = run.train_source.get_batch(np.arange(results["train_images"]))
  test = run.test_source.get_batch(np.arange(len(run.test_source)))
  results["pixels_probe"] = linear_probe(
      train["image"].reshape(len(train["image"]), -1), train["label"],
      test["image"].reshape(len(test["image"]), -1), test["label"], **probe)["test_accuracy"]
  results["seconds"] = round(time.perf_counter() - start, 1)

  rows = [("linear probe, mean-pooled tokens", "probe_mean_pooled"),
          ("kNN, mean-pooled tokens", "knn_mean_pooled"),
          ("linear probe, all tokens concatenated", "probe_all_tokens"),
          ("share of token variance from position", "position_share_of_variance")]
  print(f"\nI-JEPA {e.encoder} encoder at step {step}, grid {grid[0]} x {grid[1]}, probes "
        f"trained on {results['train_images']} images\n")
  print("| features | random init | trained |\n|---|---|---|")
  for label, key in rows:
    print(f"| {label} | {results['random_init'][key]:.4f} | {results['trained'][key]:.4f} |")
  print(f"| linear probe, pixels | {results['pixels_probe']:.4f} | |")
  print(f"\n{results['seconds']:.0f} s")
  (args.workdir / "ijepa_tokens.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
  main()
