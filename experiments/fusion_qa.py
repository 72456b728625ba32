"""Question answering about Fashion-MNIST images with each fusion module, beside an
image-only and a question-only baseline; accuracy on held-out images.

  python experiments/fusion_qa.py                      # runs/fusion_qa/, table into README
  python experiments/fusion_qa.py --rows concat --steps 20 --images 2000 \\
      --workdir /tmp/fusion_qa --no-readme             # a smoke run

The data is `jejax.data.qa`: 4 questions about each of the 60,000 train images, asked as
byte tokens, answered from a 24-word vocabulary; the test questions are about the 10,000
test images. Every row trains the same towers from scratch for the same number of steps
(`--steps` of `--batch-size`): a ViT (`--vit`, patch tokens, no class token) for the
image and the byte-level text transformer for the question, their tokens into a fusion
module (`jejax.models.fusion`, by its registered name), then an MLP classifier over the
answers:

  image_only       concat fusion of the image tokens alone
  question_only    concat fusion of the question tokens alone
  concat           concat fusion of both (masked means, LayerNorm, concatenation, MLP)
  attention_pool   a learned query weighs the two modalities' pooled features
  cross_attention  question tokens attend to the image's patch tokens

The table adds two lookup baselines with no network (`qa.lookup_baselines`): the most
frequent train answer per question text, and per image description (class and levels).

Each row writes <workdir>/<row>.json when done; a row with one is not trained again, so
the command can be repeated until the table is complete (a row interrupted midway starts
over). The table goes to <workdir>/results.md and results.json and, unless --no-readme,
into README.md between the fusion markers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this tree's jejax, whichever checkout the venv installed
from jejax.data import load_fashion_mnist, qa, tokenizer  # noqa: E402
from jejax.models import FUSIONS, TextTransformer, Tokens, vit_from_name  # noqa: E402
from zoo import replace_between_markers  # noqa: E402

README_MARKERS = ("<!-- fusion:start -->", "<!-- fusion:end -->")
# row -> (fusion module, the modalities it sees)
ROWS = {"image_only": ("concat", ("image",)), "question_only": ("concat", ("text",)),
        "concat": ("concat", ("image", "text")),
        "attention_pool": ("attention_pool", ("image", "text")),
        "cross_attention": ("cross_attention", ("image", "text"))}
DEFAULTS = {"steps": 1500, "batch_size": 128, "learning_rate": 1e-3, "vit": "nano/4",
            "text_width": 64, "text_depth": 2, "fusion_width": 64, "seed": 0, "per_image": 4}


class QAModel(nn.Module):
  """Image tokens and question tokens -> fusion -> MLP -> (B, num_answers) logits."""
  image_encoder: nn.Module  # a ViT: embed + transform give the patch tokens
  text_encoder: TextTransformer
  fusion: nn.Module
  modalities: tuple[str, ...]
  num_answers: int
  hidden: int = 128

  @nn.compact
  def __call__(self, images: jax.Array, question: jax.Array,
               question_mask: jax.Array) -> jax.Array:
    inputs = {}
    if "image" in self.modalities:
      x = images.astype(jnp.float32) / 255.0  # (B, 28, 28, 1) uint8 -> [0, 1]
      tokens = self.image_encoder.transform(self.image_encoder.embed(x))  # (B, 49, D)
      inputs["image"] = Tokens(tokens, jnp.ones(tokens.shape[:2], bool))
    if "text" in self.modalities:
      inputs["text"] = Tokens(*self.text_encoder.encode(question, question_mask))
    x = nn.gelu(nn.Dense(self.hidden)(self.fusion(inputs)), approximate=False)
    return nn.Dense(self.num_answers)(x)


def build_model(row: str, settings: dict[str, Any]) -> QAModel:
  fusion_name, modalities = ROWS[row]
  entry = FUSIONS.get(fusion_name)
  block = dict(entry.defaults, width=settings["fusion_width"])
  if fusion_name == "cross_attention":
    block.update(depth=1, num_heads=2)
  if fusion_name == "concat":
    block.update(hidden=2 * settings["fusion_width"])
  return QAModel(image_encoder=vit_from_name(settings["vit"]),
                 text_encoder=TextTransformer(
                     vocab_size=tokenizer.VOCAB_SIZE, context_length=qa.QUESTION_LENGTH,
                     width=settings["text_width"], depth=settings["text_depth"], num_heads=2),
                 fusion=entry.value(block, jnp.float32), modalities=modalities,
                 num_answers=len(qa.ANSWERS))


def _inputs(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
  return batch["image"], batch["question"], batch["question_mask"]


def train_row(row: str, train: qa.QASource, test: qa.QASource,
              settings: dict[str, Any]) -> dict[str, Any]:
  """Trains the row's model on `train` and returns its test accuracy (overall and per
  question kind), the steps, parameter count and wall time. The data order is a pure
  function of (seed, step)."""
  start = time.perf_counter()
  model = build_model(row, settings)
  steps, batch_size = settings["steps"], settings["batch_size"]
  params = model.init(jax.random.key(settings["seed"]), *_inputs(train.get_batch(np.arange(2))))
  schedule = optax.warmup_cosine_decay_schedule(0.0, settings["learning_rate"],
                                                max(steps // 20, 1), steps)
  optimizer = optax.adamw(schedule, weight_decay=1e-4)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, images, question, question_mask, answer):
    def loss_fn(params):
      logits = model.apply(params, images, question, question_mask)  # (B, answers)
      return optax.softmax_cross_entropy_with_integer_labels(logits, answer).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  per_epoch = max(len(train) // batch_size, 1)
  losses = []
  for i in range(steps):
    epoch, offset = divmod(i, per_epoch)
    order = np.random.default_rng([settings["seed"], epoch]).permutation(len(train))
    batch = train.get_batch(order[offset * batch_size:(offset + 1) * batch_size])
    params, opt_state, loss = step(params, opt_state, *_inputs(batch), batch["answer"])
    losses.append(loss)
    if i == 0:
      jax.block_until_ready(loss)
      first_step, first_cpu = time.perf_counter(), time.process_time()  # after compiling
  jax.block_until_ready(params)
  train_seconds = time.perf_counter() - start
  seconds_per_step = (time.perf_counter() - first_step) / max(steps - 1, 1)
  # CPU seconds of this process (all its threads) per step: on a shared machine the wall
  # time above also counts the waits for a core.
  cpu_seconds_per_step = (time.process_time() - first_cpu) / max(steps - 1, 1)

  @jax.jit
  def predict(params, *inputs):
    logits, state = model.apply(params, *inputs, mutable=["intermediates"])
    # attention_pool's weight on the image (modalities in name order: image, text).
    weights = state.get("intermediates", {}).get("fusion", {}).get("modality_weights")
    image_weight = weights[0][:, 0] if weights else jnp.full(logits.shape[:1], jnp.nan)
    return jnp.argmax(logits, axis=-1), image_weight

  chunks = [test.get_batch(np.arange(i, min(i + 1000, len(test))))
            for i in range(0, len(test), 1000)]
  outputs = [jax.device_get(predict(params, *_inputs(chunk))) for chunk in chunks]
  predictions, image_weight = (np.concatenate(x) for x in zip(*outputs))
  correct = predictions == test.questions.answer
  return {"row": row, "fusion": ROWS[row][0], "modalities": list(ROWS[row][1]),
          "test_accuracy": float(correct.mean()),
          **{f"accuracy_{kind}": float(correct[test.questions.kind == k].mean())
             for k, kind in enumerate(qa.QUESTION_KINDS)},
          **({f"image_weight_{kind}": float(image_weight[test.questions.kind == k].mean())
              for k, kind in enumerate(qa.QUESTION_KINDS)} if row == "attention_pool" else {}),
          "final_train_loss": float(np.mean(jax.device_get(losses[-50:]))),
          "parameters": int(sum(x.size for x in jax.tree.leaves(params))),
          "steps": steps, "train_seconds": round(train_seconds, 1),
          "seconds_per_step": round(seconds_per_step, 4),
          "cpu_seconds_per_step": round(cpu_seconds_per_step, 4),
          "wall_seconds": round(time.perf_counter() - start, 1), "settings": settings}


def load_sources(settings: dict[str, Any], images: int | None) -> tuple[qa.QASource, ...]:
  """Fashion-MNIST's QA sources; with `images`, only the first that many train and test
  images (smoke runs; the attribute thresholds are then fitted on those)."""
  train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
  cut = slice(None, images)
  return qa.qa_sources(train.images[cut], train.labels[cut], test.images[cut],
                       test.labels[cut], seed=settings["seed"], per_image=settings["per_image"])


def table(results: dict[str, dict], lookup: dict[str, float]) -> str:
  kinds = " | ".join(qa.QUESTION_KINDS)
  lines = [f"| row | fusion | inputs | test accuracy | {kinds} | parameters | train s |",
           "|---|---|---|---:|" + "---:|" * (len(qa.QUESTION_KINDS) + 2)]
  for row, r in results.items():
    cells = " | ".join(f"{r[f'accuracy_{k}']:.4f}" for k in qa.QUESTION_KINDS)
    lines.append(f"| {row} | {r['fusion']} | {' + '.join(r['modalities'])} | "
                 f"{r['test_accuracy']:.4f} | {cells} | {r['parameters']:,} | "
                 f"{r['train_seconds']:.0f} |")
  blank = " | ".join("-" for _ in qa.QUESTION_KINDS)
  for name, value in lookup.items():
    lines.append(f"| lookup table, {name.replace('_', ' ')} | - | - | {value:.4f} | {blank} "
                 "| - | - |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", default=",".join(ROWS), help="from: " + ", ".join(ROWS))
  for key, value in DEFAULTS.items():
    parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
  parser.add_argument("--images", type=int, default=None,
                      help="only the first N train and test images (smoke runs)")
  parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "fusion_qa")
  parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
  args = parser.parse_args()
  rows = args.rows.split(",")
  if unknown := sorted(set(rows) - set(ROWS)):
    parser.error(f"unknown rows {unknown}; known: {list(ROWS)}")
  settings = {key: getattr(args, key) for key in DEFAULTS} | {"images": args.images}
  args.workdir.mkdir(parents=True, exist_ok=True)

  print(f"[{time.strftime('%H:%M:%S')}] measuring the images, making the questions", flush=True)
  train, test = load_sources(settings, args.images)
  results = {}
  for row in rows:
    path = args.workdir / f"{row}.json"
    if path.exists():
      results[row] = json.loads(path.read_text())
      if results[row]["settings"] != settings:
        raise SystemExit(f"{path} was made with other settings ({results[row]['settings']}); "
                         "give these settings a --workdir of their own")
      continue
    print(f"[{time.strftime('%H:%M:%S')}] {row}: {settings['steps']} steps", flush=True)
    results[row] = train_row(row, train, test, settings)
    path.write_text(json.dumps(results[row], indent=2) + "\n")
    print(f"[{time.strftime('%H:%M:%S')}] {row}: test accuracy "
          f"{results[row]['test_accuracy']:.4f} ({results[row]['wall_seconds']:.0f} s)",
          flush=True)
  lookup = qa.lookup_baselines(train, test)
  block = (f"{table(results, lookup)}\n\nProduced by `python experiments/fusion_qa.py` "
           f"({settings['steps']} steps of {settings['batch_size']} per row; "
           f"{len(train):,} train and {len(test):,} test questions).")
  if "attention_pool" in results:
    weights = ", ".join(f"{kind} {results['attention_pool'][f'image_weight_{kind}']:.2f}"
                        for kind in qa.QUESTION_KINDS)
    block += f" attention_pool's mean weight on the image, per question kind: {weights}."
  (args.workdir / "results.md").write_text(block + "\n")
  (args.workdir / "results.json").write_text(
      json.dumps({"rows": results, "lookup": lookup}, indent=2) + "\n")
  print(block)
  if not args.no_readme:
    readme = REPO / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), block, README_MARKERS))
    print(f"table written into {readme}")


if __name__ == "__main__":
  main()
