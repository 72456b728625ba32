"""Trains every method at one budget on Fashion-MNIST and writes the results table.

  python experiments/zoo.py                      # all methods, runs/zoo/<method>
  python experiments/zoo.py --methods simclr,dino --epochs 1 --workdir /tmp/zoo --no-readme

The budget is each config's own (`experiments/configs/<method>.py`): 4 epochs of the
ConvNet methods, 2.5 epochs of the ViT methods (I-JEPA, MAE), about 10 minutes each on
2 CPU cores; `--epochs` sets one for all.

Each method runs `jejax.main` with its `experiments/configs/<method>.py` in a process of its
own, one after the other, so that every run has the machine to itself: images/s are
comparable and the peak memory is the run's own (the process's peak resident set; on a GPU
the device's peak allocation too). A method whose run already has a summary.json is not
run again, and an interrupted run resumes from its checkpoint, so the command can be
repeated until the table is complete. The table goes to <workdir>/results.md and
<workdir>/results.json and, unless --no-readme, into README.md between the zoo markers.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from summarize import load_summary, markdown_table

REPO = Path(__file__).resolve().parents[1]
METHODS = ["simclr", "moco_v2", "moco_v3", "byol", "simsiam", "swav", "vicreg",
           "barlow_twins", "dino", "ijepa", "mae"]
README_MARKERS = ("<!-- zoo:start -->", "<!-- zoo:end -->")


def run_job(name: str, config: Path, workdir: Path, overrides: list[str], *,
            log_name: str = "zoo.log") -> dict:
  """The run's summary.json (with its encoder and the commits it ran at), after training
  and evaluating it with `jejax.main` in a process of its own unless already done.

  Raises `subprocess.CalledProcessError` when the run fails; its output is in
  <workdir>/<log_name>.
  """
  summary_path = workdir / "summary.json"
  if not summary_path.exists():
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "jejax.main", f"--config={config}",
               f"--workdir={workdir}", "--config.progress_bar=False", *overrides]
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(command[1:])}", flush=True)
    with open(workdir / log_name, "a") as log:
      log.write(f"commit {current_commit()}\n")
      log.flush()
      subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
  summary = load_summary(workdir)
  log_text = (workdir / log_name).read_text()
  summary["commits"] = sorted(set(re.findall(r"^commit (\S+)$", log_text, re.M)))
  return summary


def run_method(method: str, workdir: Path, epochs: float | None) -> dict:
  """The method's summary.json, after training and evaluating it unless already done."""
  overrides = [f"--config.epochs={epochs}"] if epochs is not None else []
  summary = run_job(method, REPO / "experiments" / "configs" / f"{method}.py", workdir,
                    overrides)
  print(f"[{time.strftime('%H:%M:%S')}] {method}: linear probe "
        f"{summary['linear_probe_accuracy']:.4f} (random init "
        f"{summary['random_init_linear_probe_accuracy']:.4f}), kNN "
        f"{summary['knn_accuracy']:.4f}", flush=True)
  return summary


def current_commit() -> str:
  """The checked-out commit, with '+changes' when the tree differs from it."""
  def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO).stdout
  commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
  return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no").strip()
                   else "")


def replace_between_markers(text: str, block: str,
                            markers: tuple[str, str] = README_MARKERS) -> str:
  """`text` with what lies between the two markers replaced by `block`."""
  start, end = markers
  pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
  if not pattern.search(text):
    raise ValueError(f"README.md has no {start} ... {end} section to write the table into")
  return pattern.sub(lambda _: f"{start}\n{block}\n{end}", text)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--methods", default=",".join(METHODS),
                      help="comma-separated, from: " + ", ".join(METHODS))
  parser.add_argument("--epochs", type=float, default=None,
                      help="one budget for every method (default: each config's own)")
  parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "zoo")
  parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
  args = parser.parse_args()
  methods = args.methods.split(",")
  unknown = sorted(set(methods) - set(METHODS))
  if unknown:
    parser.error(f"unknown methods {unknown}; known: {METHODS}")

  summaries = {m: run_method(m, args.workdir / m, args.epochs) for m in methods}
  table = markdown_table(summaries)
  command = "python experiments/zoo.py" + (
      f" --methods {args.methods}" if methods != METHODS else "") + (
      f" --epochs {args.epochs:g}" if args.epochs is not None else "")
  budget = (f"{args.epochs:g} epochs per method" if args.epochs is not None
            else "each config's epochs")
  commits = sorted({c for summary in summaries.values() for c in summary["commits"]})
  block = (f"{table}\n\nProduced by `{command}` ({budget}); the runs at commit"
           f"{'s' if len(commits) > 1 else ''} {', '.join(commits)}.")
  (args.workdir / "results.md").write_text(block + "\n")
  (args.workdir / "results.json").write_text(json.dumps(summaries, indent=2) + "\n")
  print(block)
  if not args.no_readme:
    readme = REPO / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), block))
    print(f"table written into {readme}")


if __name__ == "__main__":
  main()
