"""Linear joint embedding vs reconstruction on Fashion-MNIST with synthetic noise features.

  python experiments/linear_je_vs_rc.py [--out runs/linear_je_vs_rc] [--quick]

The linear experiment of Van Assel et al., "Joint Embedding vs Reconstruction: Provable
Benefits of Latent Space Prediction for Self Supervised Learning" (NeurIPS 2025,
arXiv:2505.12477, Section 5.1 and Appendix C), on real images, with the closed forms of
`jejax.theory.linear`:

- Clean data: the images' 50 leading principal components (PCA on the train split). They
  are the k = 50 important components of Section 4.1, with c_i their variances.
- Corrupted data: 50 appended noise coordinates, gamma ~ N(0, lambda I): weak noise
  (lambda below the weakest component's variance c_50) or strong noise (lambda as large as
  the leading component's c_1).
- Augmentation T(alpha) (eq. 7): tau(x) = x + theta + alpha gamma', where gamma' is drawn
  like the noise, so alpha aligns the augmentation with the irrelevant coordinates, and
  Theta = rho diag(c, 0) + epsilon I: a perturbation along the data's own principal
  directions (rho times their variance), plus a small floor everywhere. Theta is smaller
  on the noise coordinates than on the signal ones, as for real augmentations, which
  perturb image content but know nothing of the noise; with an isotropic Theta both
  thresholds vanish in weak noise and the two regimes of Corollary 4.5 look alike.
- For each alpha and each SSL training size n: the reconstruction encoder E* (Theorem 3.1)
  and the joint-embedding encoder W* (Theorem 3.2), k = 50, from n corrupted training
  images, and the same encoders from the clean images (the reference the paper's
  propositions compare with).
- Metric: test cross-entropy of a linear probe (multinomial logistic regression) on the
  corrupted representation, minus that on the clean representation. It goes to 0 when the
  encoder learned on corrupted data reads only the important components, which
  Propositions 4.3 and 4.4 predict for large n if and only if alpha > alpha_RC (resp.
  alpha_JE); the vertical lines in the figure are these thresholds for the population
  spectrum.

Writes figure.png (gap vs alpha, one line per n, one panel per regime and method),
results.json (every point, the thresholds and the settings) and results.md (the table
that is also printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")  # files only; no display on the machines that run this
import matplotlib.pyplot as plt
import numpy as np
import optax

from jejax import theory
from jejax.data.fashion_mnist import load_fashion_mnist

METHODS = ("JE", "RC")
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Settings:
  pca_dim: int = 50  # important components k, also the embedding dimension
  sizes: tuple[int, ...] = (100, 1000, 10000, 60000)  # SSL training sizes n
  alphas: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0,
                               12.0, 16.0, 24.0, 32.0, 48.0, 64.0)
  weak_noise: float = 0.25  # noise variance, in units of c_50 (the weakest component)
  strong_noise: float = 1.0  # noise variance, in units of c_1 (the leading component)
  aug_data_scale: float = 1.0  # rho: Theta's variance along each component, per unit of c_i
  aug_floor: float = 0.01  # epsilon: Theta's floor on every coordinate, in units of c_50
  probe_train: int = 10000  # labelled train images for the probe
  probe_test: int = 10000  # test images the probe loss is measured on
  probe_l2: float = 1e-4
  probe_steps: int = 100  # L-BFGS iterations
  seed: int = 0


QUICK = {"sizes": (300, 3000, 30000), "alphas": (0.0, 0.25, 0.75, 1.5, 4.0, 16.0, 48.0),
         "probe_train": 3000, "probe_test": 3000}


def pca(train: np.ndarray, test: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
  """(n, p) train and (m, p) test -> their `dim` leading principal coordinates and the
  train variances along them, descending."""
  mean = train.mean(0)
  cov = (train - mean).T @ (train - mean) / len(train)  # (p, n) @ (n, p) -> (p, p)
  variances, axes = np.linalg.eigh(cov.astype(np.float64))
  axes = axes[:, ::-1][:, :dim]
  return (train - mean) @ axes, (test - mean) @ axes, variances[::-1][:dim]


def load_clean(dim: int) -> dict[str, np.ndarray]:
  """Fashion-MNIST pixels in [0, 1], projected on the train split's leading components."""
  splits = {s: load_fashion_mnist(s) for s in ("train", "test")}
  pixels = {s: src.images.reshape(len(src.images), -1).astype(np.float32) / 255.0
            for s, src in splits.items()}
  train, test, variances = pca(pixels["train"], pixels["test"], dim)
  return {"train": train, "test": test, "variances": variances,
          "train_labels": splits["train"].labels.astype(np.int32),
          "test_labels": splits["test"].labels.astype(np.int32)}


def append_noise(x: np.ndarray, standard_normal: np.ndarray, noise_var: float) -> np.ndarray:
  """(n, k) clean -> (n, k + k') corrupted (eq. 6), with noise_var * I on the k' extra
  coordinates. The standard normal draw is shared by the regimes, so that they differ
  only in scale."""
  return np.concatenate([x, np.sqrt(noise_var) * standard_normal], axis=1)


def aug_variances(signal_var: np.ndarray, noise_dim: int, s: Settings) -> np.ndarray:
  """lambda^Theta: rho c_i + epsilon on the signal coordinates, epsilon on the noise ones."""
  floor = s.aug_floor * signal_var.min()
  return np.concatenate([s.aug_data_scale * signal_var, np.zeros(noise_dim)]) + floor


def fit_encoder(method: str, x: jax.Array, aug_cov: jax.Array, k: int) -> jax.Array:
  """(n, d) views' means and (d, d) augmentation covariance -> the (k, d) closed-form
  encoder of joint embedding (Theorem 3.2) or reconstruction (Theorem 3.1)."""
  if method == "JE":
    return theory.joint_embedding_closed_form(x, aug_cov, k).encoder
  return theory.reconstruction_closed_form(x, aug_cov, k).encoder


def whitened_features(encoders: np.ndarray, train: np.ndarray,
                      test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(B, k, d) encoders, (P, d) and (T, d) inputs -> (B, P, k) and (B, T, k) float32
  features in the coordinates where each entry's train features have zero mean and
  identity covariance. The encoders are defined up to an invertible k x k matrix
  (Theorems 3.1 and 3.2); after whitening, any two choices differ by a rotation, to which
  an L2-penalised logistic probe is blind, so the probe loss depends on the learned
  subspace only."""
  train, test = train @ encoders.transpose(0, 2, 1), test @ encoders.transpose(0, 2, 1)
  mean = train.mean(1, keepdims=True)  # (B, 1, k)
  cov = (train - mean).transpose(0, 2, 1) @ (train - mean) / train.shape[1]  # (B, k, k)
  eigval, eigvec = np.linalg.eigh(cov)
  eigval = np.maximum(eigval, 1e-12 * eigval.max(-1, keepdims=True))
  inv_sqrt = (eigvec * eigval[:, None, :] ** -0.5) @ eigvec.transpose(0, 2, 1)
  return (((train - mean) @ inv_sqrt).astype(np.float32),
          ((test - mean) @ inv_sqrt).astype(np.float32))


def probe_loss(train: jax.Array, train_labels: jax.Array, test: jax.Array,
               test_labels: jax.Array, *, l2: float,
               steps: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Multinomial logistic regression on (P, k) whitened train features -> test
  cross-entropy and accuracy on (T, k) test features, and the final gradient norm.

  Full-batch L-BFGS with unit steps and no line search: on whitened features the Hessian
  is at most I / 2, and unit steps converge (100 steps reach the 200-step loss to 1e-4
  here), while optax's zoom line search, vmapped over the batch, spends its maximum
  number of steps on every iteration as soon as one entry has converged."""
  params = {"w": jnp.zeros((train.shape[1], NUM_CLASSES), train.dtype),
            "b": jnp.zeros(NUM_CLASSES, train.dtype)}

  def cross_entropy(params, x, y):
    logits = x @ params["w"] + params["b"]  # (n, k) @ (k, C) -> (n, C)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def objective(params):
    return cross_entropy(params, train, train_labels) + 0.5 * l2 * jnp.sum(params["w"] ** 2)

  opt = optax.lbfgs(learning_rate=1.0, linesearch=None)

  def step(carry, _):
    params, state = carry
    updates, state = opt.update(jax.grad(objective)(params), state, params)
    return (optax.apply_updates(params, updates), state), None

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
  accuracy = jnp.mean(jnp.argmax(test @ params["w"] + params["b"], -1) == test_labels)
  grad_norm = optax.tree.norm(jax.grad(objective)(params))
  return cross_entropy(params, test, test_labels), accuracy, grad_norm


def gram_root(x: np.ndarray) -> np.ndarray:
  """(n, d) data -> (d, d) r with r^T r / d = x^T x / n.

  Both closed forms, and `theory.recovery_angle`, see the data only through x^T x / n
  (eq. 2 and 4 with Xbar = X), so r stands in for x: every n then shares one compiled
  function, and the n x d^2 product is done once, here, rather than per alpha."""
  eigval, eigvec = np.linalg.eigh(x.T @ x / len(x))  # (d, n) @ (n, d) -> (d, d)
  return np.sqrt(len(eigval) * np.maximum(eigval, 0.0))[:, None] * eigvec.T


def encoders(method: str, roots: jax.Array, aug_covs: jax.Array, masks: jax.Array,
             k: int) -> tuple[jax.Array, jax.Array]:
  """One encoder per batch entry, and its recovery angle.

  Not jitted, on purpose: on jax 0.10's CPU runtime, this function under `jax.jit` now
  and then never returned (every thread idle, the result never ready; within 5 to 61
  calls in a stress loop, with or without XNNPACK, async dispatch, the thunk runtime or
  OpenBLAS threads). Run op by op, each LAPACK call runs alone, and 100 calls in a row
  did not hang. The cost is a second or so per call, a few per run.

  Args:
    roots: (B, d, d) `gram_root` of each entry's SSL training data.
    aug_covs: (B, d, d) augmentation covariances.
    masks: (B, d) 1 on the coordinates the entry's inputs keep: all of them for corrupted
      data; the k principal ones for clean data, which is the corrupted data with its
      noise coordinates set to 0.

  Returns:
    (B, k, d) encoders, to apply to corrupted inputs, and (B,) recovery angles against
    the first k coordinates (`theory.recovery_angle`).
  """
  important = jnp.eye(roots.shape[-1], k)  # (d, k): the principal coordinates

  def one(root, aug_cov, mask):
    encoder = fit_encoder(method, root, aug_cov, k) * mask  # (k, d)
    return encoder, theory.recovery_angle(encoder, important, root, aug_cov)

  return jax.vmap(one)(roots, aug_covs, masks)


def sweep(clean: dict[str, np.ndarray], s: Settings) -> tuple[list[dict], dict]:
  """Every (regime, method, n, alpha) -> probe loss gap; plus the thresholds per regime."""
  k, num_alphas = s.pca_dim, len(s.alphas)
  signal_var = clean["variances"]
  rng = np.random.default_rng(s.seed)
  standard = {split: rng.standard_normal((len(clean[split]), k)) for split in ("train", "test")}
  order = rng.permutation(len(clean["train"]))  # nested SSL subsets: first n of one shuffle
  y_train = jnp.asarray(clean["train_labels"][:s.probe_train])
  y_test = jnp.asarray(clean["test_labels"][:s.probe_test])
  aug_var = aug_variances(signal_var, k, s)
  noise_levels = {"weak": s.weak_noise * signal_var.min(),
                  "strong": s.strong_noise * signal_var.max()}
  # Batch entries: the corrupted data at each alpha, then one clean reference. The clean
  # encoder ignores alpha: with zeros on the noise coordinates both closed forms are block
  # diagonal, and alpha only enters the noise block. So one reference per (method, n).
  masks = np.ones((num_alphas + 1, 2 * k))
  masks[-1, k:] = 0.0
  probe = jax.jit(jax.vmap(functools.partial(probe_loss, l2=s.probe_l2, steps=s.probe_steps),
                           in_axes=(0, None, 0, None)))

  records, thresholds = [], {}
  for regime, noise_var in noise_levels.items():
    noise = np.full(k, noise_var)
    thresholds[regime] = {
        "noise_var": float(noise_var),
        "alpha_JE": float(theory.alpha_je(signal_var, noise, aug_var)),
        "alpha_RC": float(theory.alpha_rc(signal_var, noise, aug_var)),
        "boundary": float(theory.noise_regime_boundary(signal_var, aug_var))}
    train, test = (append_noise(clean[split], standard[split], noise_var)
                   for split in ("train", "test"))
    aug_covs = jax.vmap(lambda a, noise=noise: theory.augmentation_cov(a, noise, aug_var))(
        jnp.asarray(s.alphas + s.alphas[-1:]))  # (A + 1, d, d)
    for n in s.sizes:
      ssl = train[order[:n]]
      roots = np.stack([gram_root(ssl)] * num_alphas + [gram_root(ssl * masks[-1])])
      for method in METHODS:
        weights, angles = map(np.asarray, encoders(method, roots, aug_covs, masks, k))
        train_feats, test_feats = whitened_features(weights, train[:s.probe_train],
                                                    test[:s.probe_test])
        losses, accuracies, grad_norms = map(
            np.asarray, probe(train_feats, y_train, test_feats, y_test))
        for i, alpha in enumerate(s.alphas):
          records.append({
              "regime": regime, "method": method, "n": int(n), "alpha": float(alpha),
              "gap": float(losses[i] - losses[-1]), "loss": float(losses[i]),
              "clean_loss": float(losses[-1]), "accuracy": float(accuracies[i]),
              "clean_accuracy": float(accuracies[-1]),
              "recovery_angle_deg": float(np.degrees(angles[i])),
              "probe_grad_norm": float(max(grad_norms[i], grad_norms[-1]))})
  return records, thresholds


def table(records: list[dict], alphas: tuple[float, ...]) -> str:
  """Markdown: probe loss gap (corrupted - clean, nats) per regime, method and n."""
  by_key = {(r["regime"], r["method"], r["n"], r["alpha"]): r["gap"] for r in records}
  keys = sorted({(r["regime"], r["method"], r["n"]) for r in records},
                key=lambda t: (t[0] != "weak", t[1], t[2]))
  lines = ["| regime | method | n | " + " | ".join(f"alpha={a:g}" for a in alphas) + " |",
           "|---|---|---:|" + "---:|" * len(alphas)]
  for regime, method, n in keys:
    gaps = " | ".join(f"{by_key[(regime, method, n, a)]:.3f}" for a in alphas)
    lines.append(f"| {regime} | {method} | {n} | {gaps} |")
  return "\n".join(lines)


def plot(records: list[dict], thresholds: dict, path: Path) -> None:
  """Gap vs alpha: rows are the regimes, columns the methods, one line per n, and the
  method's threshold (Proposition 4.3 / 4.4) as a dashed vertical line."""
  regimes = list(thresholds)
  sizes = sorted({r["n"] for r in records})
  colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(sizes)))
  fig, axes = plt.subplots(len(regimes), len(METHODS), figsize=(10, 7), sharex=True,
                           sharey="row", squeeze=False)
  for row, regime in enumerate(regimes):
    for col, method in enumerate(METHODS):
      ax = axes[row, col]
      for n, color in zip(sizes, colors):
        points = sorted((r["alpha"], r["gap"]) for r in records
                        if (r["regime"], r["method"], r["n"]) == (regime, method, n))
        ax.plot(*zip(*points), "o-", color=color, ms=3, label=f"n = {n}")
      alpha_star = thresholds[regime][f"alpha_{method}"]
      ax.axvline(alpha_star, color="k", ls="--", lw=1,
                 label=f"alpha_{method} = {alpha_star:.2f}")
      ax.axhline(0.0, color="gray", lw=0.5)
      ax.set_xscale("symlog", linthresh=0.1)  # alpha = 0 stays on the axis
      ax.set_title(f"{method}, {regime} noise (var {thresholds[regime]['noise_var']:.3g})")
      ax.set_xlabel("alignment alpha")
      if col == 0:
        ax.set_ylabel("probe CE: corrupted - clean")
      ax.legend(fontsize=7)
  fig.suptitle("Fashion-MNIST, PCA-50 + 50 noise coordinates, closed-form linear SSL")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run(s: Settings, out: Path) -> dict:
  """The whole experiment: writes figure.png, results.json, results.md under `out`."""
  start = time.perf_counter()
  with jax.enable_x64(True):  # the closed forms invert spectra spanning ~4 decades
    clean = load_clean(s.pca_dim)
    records, thresholds = sweep(clean, s)
  seconds = time.perf_counter() - start
  shown = tuple(a for a in (0.0, 0.5, 1.5, 4.0, 16.0, 64.0) if a in s.alphas) or s.alphas
  markdown = table(records, shown)
  out.mkdir(parents=True, exist_ok=True)
  plot(records, thresholds, out / "figure.png")
  results = {"settings": dataclasses.asdict(s), "thresholds": thresholds,
             "signal_var": clean["variances"].tolist(), "seconds": seconds,
             "records": records}
  (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  (out / "results.md").write_text(markdown + "\n")
  return results | {"table": markdown}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="runs/linear_je_vs_rc")
  parser.add_argument("--quick", action="store_true", help="fewer n, alphas and probe images")
  parser.add_argument("--sizes", type=lambda v: tuple(int(x) for x in v.split(",")),
                      help="comma-separated SSL training sizes n")
  parser.add_argument("--alphas", type=lambda v: tuple(float(x) for x in v.split(",")),
                      help="comma-separated alignments alpha")
  parser.add_argument("--probe-train", type=int)
  parser.add_argument("--probe-test", type=int)
  parser.add_argument("--weak-noise", type=float, help="noise variance in units of c_50")
  parser.add_argument("--strong-noise", type=float, help="noise variance in units of c_1")
  parser.add_argument("--aug-data-scale", type=float, help="rho of Theta = rho diag(c) + eps")
  parser.add_argument("--seed", type=int)
  args = parser.parse_args()

  overrides = QUICK.copy() if args.quick else {}
  overrides |= {name: value for name, value in vars(args).items()
                if value is not None and name in Settings.__dataclass_fields__}
  s = Settings(**overrides)
  results = run(s, Path(args.out))
  print("thresholds:", json.dumps(results["thresholds"], indent=2))
  print(f"\nlinear probe test cross-entropy, corrupted minus clean (nats); clean = "
        f"{results['records'][0]['clean_loss']:.3f}\n")
  print(results["table"])
  print(f"\n{results['seconds']:.0f} s; wrote {args.out}/figure.png, results.json, results.md")


if __name__ == "__main__":
  main()
