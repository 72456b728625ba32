"""Markdown table of finished runs, from their summary.json files.

  python experiments/summarize.py runs/simclr runs/byol runs/swav
"""

import json
import sys
from pathlib import Path

COLUMNS = [("linear probe", "linear_probe_accuracy", "{:.4f}"),
           ("same encoder, random init", "random_init_linear_probe_accuracy", "{:.4f}"),
           ("kNN (k=20)", "knn_accuracy", "{:.4f}"),
           ("effective rank (test features)", "effective_rank", "{:.1f}"),
           ("train images/s", "train_images_per_second", "{:.0f}"),
           ("steps", "steps", "{}"),
           ("wall s (train + eval)", "wall_seconds", "{:.0f}")]


def main(run_dirs: list[str]) -> None:
  print("| run | " + " | ".join(name for name, _, _ in COLUMNS) + " |")
  print("|---" * (len(COLUMNS) + 1) + "|")
  for run_dir in run_dirs:
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    cells = [fmt.format(summary[key]) for _, key, fmt in COLUMNS]
    print(f"| `{run_dir}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main(sys.argv[1:])
