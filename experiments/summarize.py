"""Markdown table of finished runs, from their summary.json files.

  python experiments/summarize.py runs/simclr runs/byol runs/swav
"""

import json
import sys
from pathlib import Path

COLUMNS = [("encoder", "encoder", "{}"),
           ("linear probe", "linear_probe_accuracy", "{:.4f}"),
           ("same encoder, random init", "random_init_linear_probe_accuracy", "{:.4f}"),
           ("kNN (k=20)", "knn_accuracy", "{:.4f}"),
           ("effective rank (test features)", "effective_rank", "{:.1f}"),
           ("train images/s", "train_images_per_second", "{:.0f}"),
           ("peak memory MiB", "peak_host_memory_mib", "{:.0f}"),
           ("steps", "steps", "{}"),
           ("wall s (train + eval)", "wall_seconds", "{:.0f}")]


def markdown_table(summaries: dict[str, dict]) -> str:
  """One row per run name; a value the summary lacks shows as '-'."""
  lines = ["| run | " + " | ".join(name for name, _, _ in COLUMNS) + " |",
           "|---" * (len(COLUMNS) + 1) + "|"]
  for name, summary in summaries.items():
    cells = [fmt.format(summary[key]) if key in summary else "-" for _, key, fmt in COLUMNS]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def encoder_name(config: dict) -> str:
  """'convnet', 'vit micro/4', with '(target)' where the target encoder is evaluated."""
  model = config["model"]
  name = model["backbone"]
  if name == "vit":
    name = f"vit {model['vit']['size']}/{model['vit']['patch_size']}"
  return name + (" (target)" if config["eval"].get("encoder") == "target" else "")


def load_summary(run_dir: str | Path) -> dict:
  """A run's summary.json, with the encoder it evaluated (from its config.json)."""
  run_dir = Path(run_dir)
  summary = json.loads((run_dir / "summary.json").read_text())
  config = json.loads((run_dir / "config.json").read_text())
  return {"encoder": encoder_name(config), **summary}


def main(run_dirs: list[str]) -> None:
  print(markdown_table({f"`{d}`": load_summary(d) for d in run_dirs}))


if __name__ == "__main__":
  main(sys.argv[1:])
