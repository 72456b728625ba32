"""Joint embedding vs reconstruction on corrupted Fashion-MNIST (arXiv 2505.12477, Table 1).

  python experiments/corruption_robustness.py        # the sweep, then table, figure, README
  python experiments/corruption_robustness.py --hours 2   # start no run after 2 hours
  python experiments/corruption_robustness.py --methods byol,mae --corruptions pixelate \\
      --severities 1,5 --epochs 0.02 --workdir /tmp/corruption --no-readme

The protocol of the paper's section 5.2 and appendix D.1: every train and test image gets
one fixed ImageNet-C corruption (`--config.data.corruption`, `jejax.data.corruptions`),
each method pretrains on the corrupted train split, and a linear probe on its frozen
backbone is trained and tested on the corrupted splits. BYOL, DINO, I-JEPA (joint
embedding) and MAE (reconstruction) train the same ViT-micro/4 (pixels standardised) for
the same number of epochs (`--epochs`), each with its own `experiments/configs/<method>.py`
otherwise: views, heads, masks, optimizer, and its pooling (MAE's class token, the
others' mean over tokens). The config lengths given in epochs (the learning-rate warmup;
DINO's teacher temperature warmup and frozen last layer) are scaled by (budget / the
config's epochs), so that each keeps its share of the method's own run. One clean run
per method also probes the encoder at its random initialisation: the baseline every row
must beat.

Appendix D.3, for one joint-embedding method and one corruption: BYOL on the severity-5
Gaussian-noise data again, with that noise (ImageNet-C's severity-5 std) also added to
its views on the device, to each view with probability 0.5 (`augment.noise_prob`,
`augment.noise_std`; `jejax.augment.gaussian_noise`).

Each run is `python -m jejax.main` in a process of its own, in
<workdir>/<method>/<corruption>_s<severity> (<workdir>/<method>/clean). A run that has a
summary.json is skipped and an interrupted one resumes from its checkpoint, so the
command can be repeated until the sweep is complete; a failed run is reported and left
out. The whole sweep at the default 2.5 epochs per run takes about 7.5 hours on 2 CPU
cores (the faster of two machines measured; README), so it runs in parts: `--hours`
starts no run after that many hours, and the default workdir,
experiments/results/corruption_robustness, is in git (only the files the report reads),
so that the finished runs carry over to a new checkout. The budget is 2.5 epochs
because at 0.25 and 1 epoch BYOL's and DINO's clean runs do not beat their encoder at
random initialisation (README). `--clean-only` runs only the clean runs (with their
random-init probes), to see what a run costs at a budget and whether it beats its
random init. Writes
<workdir>/results.md and results.json and, unless --no-readme, the figure to
docs/figures/corruption_robustness.png (else to <workdir>) and the tables into README.md
between the corruption markers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from zoo import REPO, replace_between_markers, run_job

sys.path.insert(0, str(REPO))  # this tree's jejax, whichever checkout the venv installed
from jejax import config as config_lib  # noqa: E402

CONFIGS = REPO / "experiments" / "configs"
METHODS = ("byol", "dino", "ijepa", "mae")
RECONSTRUCTION = ("mae",)  # the others are joint-embedding methods
CORRUPTIONS = ("gaussian_noise", "pixelate", "zoom_blur")
SEVERITIES = (1, 3, 5)
# The same ViT for every method, pixels standardised with clean Fashion-MNIST's mean and
# std as in ijepa.py and mae.py (the BYOL and DINO configs are the ConvNet's, without them).
VIT = ("--config.model.backbone=vit", "--config.model.vit.size=micro",
       "--config.model.vit.patch_size=4", "--config.model.vit.pixel_mean=(0.2860,)",
       "--config.model.vit.pixel_std=(0.3530,)")
# arXiv 2505.12477, Table 1 (ImageNet-100, linear probe top-1): the drop from severity 1
# to 5 in %, as issue 11 quotes it (whether in points or relative to severity 1 was not
# checked against the paper here; the table shows ours both ways). No I-JEPA row there.
PAPER_DROP = {("mae", "pixelate"): 27.9, ("mae", "gaussian_noise"): 27.3,
              ("mae", "zoom_blur"): 20.0, ("byol", "pixelate"): 12.0,
              ("byol", "gaussian_noise"): 16.1, ("byol", "zoom_blur"): 9.0,
              ("dino", "pixelate"): 12.4, ("dino", "gaussian_noise"): 12.7,
              ("dino", "zoom_blur"): 6.5}
# Appendix D.3: one joint-embedding method, one corruption, the corruption's own noise std
# (ImageNet-C's severity 5, as in jejax.data.corruptions) added to its views.
AUGMENTED = ("byol", "gaussian_noise", 5)
AUGMENT_NOISE_STD = 0.38
AUGMENT_NOISE_PROB = 0.5
# Figure colours: joint-embedding methods in blues and greens, reconstruction in red.
COLOURS = {"byol": "tab:blue", "dino": "tab:green", "ijepa": "tab:cyan", "mae": "tab:red"}
README_MARKERS = ("<!-- corruption:start -->", "<!-- corruption:end -->")
FIGURE = REPO / "docs" / "figures" / "corruption_robustness.png"
# The default workdir, in git: its .gitignore keeps each finished run's summary.json,
# config.json and corruption.log (what the report reads), not its checkpoints and plots.
RESULTS = REPO / "experiments" / "results" / "corruption_robustness"


class Job(NamedTuple):
  """One run of the sweep: a method on one corruption at one severity (0: clean data),
  with the corruption also added to its views when `augmented` (appendix D.3)."""
  method: str
  corruption: str | None = None
  severity: int = 0
  augmented: bool = False

  @property
  def name(self) -> str:
    """'clean' or '<corruption>_s<severity>'."""
    return "clean" if self.severity == 0 else f"{self.corruption}_s{self.severity}"

  def workdir(self, root: Path) -> Path:
    """<root>/<method>[+noise_augmentation]/<name>."""
    return root / (self.method + ("+noise_augmentation" if self.augmented else "")) / self.name


def sweep(methods: tuple[str, ...], corruptions: tuple[str, ...],
          severities: tuple[int, ...], *, augmented: bool,
          clean_only: bool = False) -> list[Job]:
  """The clean runs first (the random-init baselines), then each corruption in turn, its
  severities ends first (`ends_first`), every method at each; then the appendix D.3 run
  if asked for. Only the clean runs when `clean_only` (to size a budget: their costs and
  whether they beat random init)."""
  jobs = [Job(m) for m in methods]
  if clean_only:
    return jobs
  jobs += [Job(m, c, s) for c in corruptions for s in ends_first(severities) for m in methods]
  if augmented:
    jobs.append(Job(*AUGMENTED, augmented=True))
  return jobs


def ends_first(severities: tuple[int, ...]) -> list[int]:
  """The lowest and the highest severity, then the others: a corruption's drop is known
  once its two ends have run, and the sweep runs in parts (`--hours`)."""
  ends = (min(severities), max(severities))
  return sorted(severities, key=lambda s: (s not in ends, s))


def schedule_overrides(method: str, epochs: float) -> list[str]:
  """The method's config lengths in epochs scaled by epochs / the config's epochs: the
  learning-rate warmup and every `*_epochs` field of the method's block (DINO's teacher
  temperature warmup and frozen last layer)."""
  c = config_lib.load(CONFIGS / f"{method}.py")
  scale = epochs / c.epochs
  fields = {"optim.warmup_epochs": c.optim.warmup_epochs}
  fields |= {f"{method}.{key}": value for key, value in c[method].items()
             if key.endswith("_epochs")}
  return [f"--config.{field}={value * scale:.6g}" for field, value in fields.items()]


def job_overrides(job: Job, epochs: float) -> list[str]:
  """Everything the run sets on top of its method's config."""
  overrides = [*VIT, f"--config.epochs={epochs}", *schedule_overrides(job.method, epochs),
               "--config.eval.every_epochs=0",
               f"--config.eval.probe_random_init={job.severity == 0}"]
  if job.severity:
    overrides += [f"--config.data.corruption={job.corruption}",
                  f"--config.data.severity={job.severity}"]
  if job.augmented:
    overrides += [f"--config.augment.noise_prob={AUGMENT_NOISE_PROB}",
                  f"--config.augment.noise_std={AUGMENT_NOISE_STD}"]
  return overrides


def check_budget(workdir: Path, epochs: float) -> None:
  """Refuses a workdir whose run was made with another budget: its summary would be
  taken as this sweep's (a finished run is not run again)."""
  config_path = workdir / "config.json"
  if config_path.exists():
    saved = json.loads(config_path.read_text())["epochs"]
    if saved != epochs:
      raise SystemExit(f"{workdir} holds a run of {saved:g} epochs, not {epochs:g}: give "
                       "this budget a --workdir of its own")


def run_all(jobs: list[Job], root: Path, epochs: float,
            deadline: float = float("inf")) -> dict[Job, dict]:
  """The summary of every job that finished, running those not yet done; none starts
  once `time.monotonic()` has passed `deadline`."""
  for job in jobs:
    check_budget(job.workdir(root), epochs)
  summaries = {}
  for job in jobs:
    label = str(job.workdir(root).relative_to(root))
    if time.monotonic() > deadline and not (job.workdir(root) / "summary.json").exists():
      print(f"{label}: not started (--hours has passed)", flush=True)
      continue
    try:
      summaries[job] = run_job(label, CONFIGS / f"{job.method}.py", job.workdir(root),
                               job_overrides(job, epochs), log_name="corruption.log")
    except subprocess.CalledProcessError:
      print(f"{label} failed: see {job.workdir(root) / 'corruption.log'}", flush=True)
      continue
    print(f"[{time.strftime('%H:%M:%S')}] {label}: linear probe "
          f"{summaries[job]['linear_probe_accuracy']:.4f}", flush=True)
  return summaries


def drop(accuracy: dict[int, float], low: int = 1, high: int = 5) -> float | None:
  """Accuracy lost from severity `low` to `high`, in points (100 x the difference); None
  when either run is missing."""
  if low not in accuracy or high not in accuracy:
    return None
  return 100 * (accuracy[low] - accuracy[high])


def accuracies(summaries: dict[Job, dict]) -> dict[tuple[str, str], dict[int, float]]:
  """{(method, corruption): {severity: linear-probe accuracy}} of the plain runs (not
  appendix D.3's)."""
  table: dict[tuple[str, str], dict[int, float]] = {}
  for job, summary in summaries.items():
    if job.severity and not job.augmented:
      table.setdefault((job.method, job.corruption), {})[job.severity] = (
          summary["linear_probe_accuracy"])
  return table


def _cell(value: float | None, fmt: str) -> str:
  """`value` formatted, or '-' for a missing one."""
  return "-" if value is None else fmt.format(value)


def family(method: str) -> str:
  """'reconstruction' or 'joint embedding'."""
  return "reconstruction" if method in RECONSTRUCTION else "joint embedding"


def robustness_table(summaries: dict[Job, dict], methods: tuple[str, ...],
                     corruptions: tuple[str, ...], severities: tuple[int, ...]) -> str:
  """Markdown: per corruption and method, the probe accuracy at each severity and the
  drop from severity 1 to 5 (points, and relative to severity 1), beside the paper's."""
  table = accuracies(summaries)
  lines = ["| corruption | method | family | " + " | ".join(f"severity {s}" for s in severities)
           + " | drop 1 to 5 (points) | relative drop | paper's drop (ImageNet-100, %) |",
           "|---|---|---|" + "---:|" * (len(severities) + 3)]
  for corruption in corruptions:
    for method in methods:
      accuracy = table.get((method, corruption), {})
      points = drop(accuracy)
      relative = None if points is None else points / accuracy[1]
      cells = [_cell(accuracy.get(s), "{:.4f}") for s in severities]
      cells += [_cell(points, "{:.1f}"), _cell(relative, "{:.1f}%"),
                _cell(PAPER_DROP.get((method, corruption)), "{:.1f}")]
      lines.append(f"| {corruption} | {method} | {family(method)} | " + " | ".join(cells)
                   + " |")
  return "\n".join(lines)


def ordering(summaries: dict[Job, dict], methods: tuple[str, ...],
             corruptions: tuple[str, ...]) -> str:
  """Per corruption, whether reconstruction dropped more than every joint-embedding
  method (the paper's ordering), with the drops; '-' where a run is missing."""
  table = accuracies(summaries)
  lines = []
  for corruption in corruptions:
    drops = {m: drop(table.get((m, corruption), {})) for m in methods}
    if any(d is None for d in drops.values()):
      lines.append(f"- {corruption}: incomplete")
      continue
    joint = {m: d for m, d in drops.items() if m not in RECONSTRUCTION}
    reconstruction = {m: d for m, d in drops.items() if m in RECONSTRUCTION}
    holds = bool(joint and reconstruction) and min(reconstruction.values()) > max(
        joint.values())
    listed = ", ".join(f"{m} {d:.1f}" for m, d in drops.items())
    lines.append(f"- {corruption}: {'yes' if holds else 'no'} (drops in points: {listed})")
  return "\n".join(lines)


def baseline_table(summaries: dict[Job, dict], methods: tuple[str, ...]) -> str:
  """Markdown: each method's clean run against its encoder at random initialisation (the
  difference in points, so that a margin within run-to-run noise reads as one), with
  what the run cost (train images/s; wall time of training and evaluation, the
  random-init probe included)."""
  lines = ["| method | encoder | clean data | same encoder, random init | difference "
           "(points) | train images/s | wall s |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for method in methods:
    summary = summaries.get(Job(method))
    if summary is None:
      lines.append(f"| {method} | - | - | - | - | - | - |")
      continue
    trained = summary["linear_probe_accuracy"]
    random_init = summary["random_init_linear_probe_accuracy"]
    lines.append(f"| {method} | {summary['encoder']} | {trained:.4f} | {random_init:.4f} | "
                 f"{100 * (trained - random_init):+.2f} | "
                 f"{summary['train_images_per_second']:.0f} | {summary['wall_seconds']:.0f} |")
  return "\n".join(lines)


def augmentation_line(summaries: dict[Job, dict]) -> str:
  """Appendix D.3: the plain and the noise-augmented run on the same data."""
  method, corruption, severity = AUGMENTED
  plain = summaries.get(Job(method, corruption, severity))
  augmented = summaries.get(Job(method, corruption, severity, augmented=True))
  if plain is None or augmented is None:
    return f"Appendix D.3 ({method}, {corruption} {severity}): incomplete."
  before, after = plain["linear_probe_accuracy"], augmented["linear_probe_accuracy"]
  return (f"Appendix D.3: {method} on {corruption} severity {severity}, with that noise "
          f"(std {AUGMENT_NOISE_STD}) also added to each view with probability "
          f"{AUGMENT_NOISE_PROB}: linear probe {before:.4f} without, {after:.4f} with "
          f"({100 * (after - before):+.1f} points).")


def plot(summaries: dict[Job, dict], methods: tuple[str, ...], corruptions: tuple[str, ...],
         path: Path) -> None:
  """One panel per corruption: probe accuracy against severity (0: clean), one line per
  method, joint embedding solid and reconstruction dashed; each method's random-init
  baseline on clean data dotted; the appendix D.3 run a star."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  table = accuracies(summaries)
  fig, axes = plt.subplots(1, len(corruptions), figsize=(4.2 * len(corruptions), 3.8),
                           sharey=True, squeeze=False)
  for ax, corruption in zip(axes[0], corruptions):
    for method in methods:
      points = dict(table.get((method, corruption), {}))
      clean = summaries.get(Job(method))
      if clean is not None:
        points[0] = clean["linear_probe_accuracy"]
        ax.axhline(clean["random_init_linear_probe_accuracy"], color=COLOURS[method],
                   linestyle=":", linewidth=1)
      severities = sorted(points)
      ax.plot(severities, [points[s] for s in severities], color=COLOURS[method],
              linestyle="--" if method in RECONSTRUCTION else "-",
              marker="s" if method in RECONSTRUCTION else "o",
              linewidth=2.5 if method in RECONSTRUCTION else 1.5,
              label=f"{method} ({family(method)})")
    augmented = summaries.get(Job(*AUGMENTED, augmented=True))
    if augmented is not None and corruption == AUGMENTED[1]:
      ax.plot([AUGMENTED[2]], [augmented["linear_probe_accuracy"]],
              color=COLOURS[AUGMENTED[0]], marker="*", markersize=12, linestyle="none",
              label=f"{AUGMENTED[0]} + noise augmentation (D.3)")
    ax.set_title(corruption.replace("_", " "))
    ax.set_xlabel("severity (0: clean)")
    ax.set_xticks([0, *SEVERITIES])
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("linear probe accuracy (test)")
  legend = {}  # label -> handle, over all panels (the D.3 star is on one of them)
  for ax in axes[0]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      legend.setdefault(label, handle)
  axes[0][-1].legend(legend.values(), legend.keys(), fontsize=8,
                     title="dotted: random init, clean", title_fontsize=8)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)
  plt.close(fig)


def report(summaries: dict[Job, dict], args: argparse.Namespace, command: str) -> str:
  """The tables, the figure and how they were made, as the README shows them."""
  total_hours = sum(s["wall_seconds"] for s in summaries.values()) / 3600
  commits = sorted({c for s in summaries.values() for c in s["commits"]})
  steps = sorted({s["steps"] for s in summaries.values()})
  return "\n\n".join([
      robustness_table(summaries, args.methods, args.corruptions, args.severities),
      "Reconstruction (MAE) drops more than every joint-embedding method (the paper's "
      "ordering):\n" + ordering(summaries, args.methods, args.corruptions),
      baseline_table(summaries, args.methods),
      augmentation_line(summaries),
      f"![linear probe accuracy against corruption severity]"
      f"({FIGURE.relative_to(REPO).as_posix()})",
      f"Produced by `{command}`: {len(summaries)} runs of {args.epochs:g} epochs "
      f"({', '.join(map(str, steps))} steps of 256) each, {total_hours:.2f} h in all "
      f"(the runs' train + evaluation wall times), at commit"
      f"{'s' if len(commits) > 1 else ''} {', '.join(commits)}."])


def command_line(args: argparse.Namespace, defaults: argparse.Namespace) -> str:
  """The command that makes this report, with the options that differ from defaults."""
  parts = ["python experiments/corruption_robustness.py"]
  for option in ("methods", "corruptions", "severities"):
    if getattr(args, option) != getattr(defaults, option):
      parts.append(f"--{option} {','.join(map(str, getattr(args, option)))}")
  if args.epochs != defaults.epochs:
    parts.append(f"--epochs {args.epochs:g}")
  if args.no_augmentation:
    parts.append("--no-augmentation")
  if args.clean_only:
    parts.append("--clean-only")
  return " ".join(parts)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
  """The parsed command line and the defaults, lists as tuples."""
  def names(known):
    def parse(text):
      values = tuple(text.split(","))
      unknown = sorted(set(values) - set(known))
      if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; known: {', '.join(known)}")
      return values
    return parse

  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--methods", type=names(METHODS), default=METHODS)
  parser.add_argument("--corruptions", type=names(CORRUPTIONS), default=CORRUPTIONS)
  parser.add_argument("--severities", default=SEVERITIES,
                      type=lambda text: tuple(int(s) for s in text.split(",")))
  parser.add_argument("--epochs", type=float, default=2.5,
                      help="every run's budget (default 2.5: 585 steps of 256, the least "
                      "at which BYOL's and DINO's clean runs beat their random init)")
  parser.add_argument("--hours", type=float, default=float("inf"),
                      help="start no run after this many hours (the sweep takes several "
                      "sittings; a run under way finishes)")
  parser.add_argument("--no-augmentation", action="store_true",
                      help="leave out the appendix D.3 run")
  parser.add_argument("--clean-only", action="store_true",
                      help="only the clean runs with their random-init probes: what a run "
                      "costs at --epochs and whether it beats random init")
  parser.add_argument("--workdir", type=Path, default=RESULTS,
                      help="where the runs are (default: the repository's record of the "
                      "finished ones, so that a new checkout resumes the sweep)")
  parser.add_argument("--no-readme", action="store_true",
                      help="leave README.md and docs/figures alone (the figure goes to "
                      "--workdir)")
  return parser.parse_args(argv), parser.parse_args([])


def main() -> None:
  start = time.perf_counter()
  args, defaults = parse_args()
  jobs = sweep(args.methods, args.corruptions, args.severities,
               augmented=not args.no_augmentation, clean_only=args.clean_only)
  summaries = run_all(jobs, args.workdir, args.epochs,
                      deadline=time.monotonic() + 3600 * args.hours)
  block = report(summaries, args, command_line(args, defaults))
  args.workdir.mkdir(parents=True, exist_ok=True)
  (args.workdir / "results.md").write_text(block + "\n")
  (args.workdir / "results.json").write_text(json.dumps(
      [{**job._asdict(), **summary} for job, summary in summaries.items()], indent=2) + "\n")
  print(block)
  plot(summaries, args.methods, args.corruptions,
       args.workdir / FIGURE.name if args.no_readme else FIGURE)
  if not args.no_readme:
    readme = REPO / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), block, README_MARKERS))
    print(f"tables written into {readme}, figure into {FIGURE}")
  print(f"{len(summaries)} of {len(jobs)} runs done; this invocation took "
        f"{(time.perf_counter() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
  main()
