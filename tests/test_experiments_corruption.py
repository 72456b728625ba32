"""experiments/corruption_robustness.py: its grid, the command lines it gives each run
(parsed as `jejax.main` parses them), skipping finished runs, the drop and the tables."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from absl import flags
from ml_collections import config_flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))  # the scripts import each other by name

import corruption_robustness as cr  # noqa: E402

from jejax import config as config_lib  # noqa: E402
from jejax.data import CORRUPTIONS  # noqa: E402
from jejax.methods.views import view_recipes  # noqa: E402

EPOCHS = 0.25


def parsed(job: cr.Job, epochs: float = EPOCHS):
  """The config `python -m jejax.main` builds from the job's command line."""
  path = cr.CONFIGS / f"{job.method}.py"
  argv = ["jejax.main", f"--config={path}", *cr.job_overrides(job, epochs)]
  values = flags.FlagValues()
  # As jejax.main defines it; sys_argv says which override flags to define.
  config_flags.DEFINE_config_file("config", str(path), flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  return config_lib.validate(values.config)


def summary(accuracy, random_init=None, epochs=EPOCHS):
  """A finished run's summary as `run_job` returns it."""
  s = {"linear_probe_accuracy": accuracy, "wall_seconds": 100.0, "steps": 59,
       "train_images_per_second": 500.0, "commits": ["abc1234"], "encoder": "vit micro/4"}
  if random_init is not None:
    s["random_init_linear_probe_accuracy"] = random_init
  return s


def test_grid_is_clean_runs_then_every_cell_then_appendix_d3():
  jobs = cr.sweep(cr.METHODS, cr.CORRUPTIONS, cr.SEVERITIES, augmented=True)
  assert len(jobs) == 4 + 4 * 3 * 3 + 1 == len(set(jobs))
  assert jobs[:4] == [cr.Job(m) for m in cr.METHODS]
  # Each corruption in turn, severities 1 and 5 (its drop) before 3, every method at each.
  assert [(j.corruption, j.severity) for j in jobs[4:-1:4]] == [
      (c, s) for c in cr.CORRUPTIONS for s in (1, 5, 3)]
  assert all({j.method for j in jobs[i:i + 4]} == set(cr.METHODS) for i in range(4, 40, 4))
  assert jobs[-1] == cr.Job("byol", "gaussian_noise", 5, augmented=True)
  assert set(cr.CORRUPTIONS) == set(CORRUPTIONS)
  assert cr.ends_first((2, 3, 4, 1)) == [1, 4, 2, 3] and cr.ends_first((3,)) == [3]
  root = Path("/runs")
  assert jobs[0].workdir(root) == root / "byol" / "clean"
  assert jobs[4].workdir(root) == root / "byol" / "gaussian_noise_s1"
  assert jobs[-1].workdir(root) == root / "byol+noise_augmentation" / "gaussian_noise_s5"
  clean = cr.sweep(cr.METHODS, cr.CORRUPTIONS, cr.SEVERITIES, augmented=True,
                   clean_only=True)
  assert clean == jobs[:4]


@pytest.mark.parametrize("method", cr.METHODS)
def test_every_run_has_the_same_vit_and_budget_and_its_own_pooling(method):
  clean = parsed(cr.Job(method))
  noisy = parsed(cr.Job(method, "pixelate", 3))
  mae = config_lib.load(cr.CONFIGS / "mae.py").model.vit
  for c in (clean, noisy):
    assert (c.model.backbone, c.model.vit.size, c.model.vit.patch_size) == ("vit", "micro", 4)
    # Standardised as I-JEPA's and MAE's own configs do.
    assert (c.model.vit.pixel_mean, c.model.vit.pixel_std) == (mae.pixel_mean, mae.pixel_std)
    assert c.epochs == EPOCHS and c.eval.every_epochs == 0
  # The pooling stays the method's: MAE's class token, mean over tokens for the others.
  assert noisy.model.vit.class_token == (method == "mae")
  assert noisy.model.vit.pool == ("cls" if method == "mae" else "mean")
  assert (clean.data.corruption, clean.eval.probe_random_init) == (None, True)
  assert (noisy.data.corruption, noisy.data.severity) == ("pixelate", 3)
  assert not noisy.eval.probe_random_init


def test_schedules_in_epochs_keep_their_share_of_the_run():
  own = config_lib.load(cr.CONFIGS / "dino.py")  # 4 epochs
  c = parsed(cr.Job("dino", "zoom_blur", 5))
  # Hand values: a 0.25-epoch run is 1/16 of DINO's 4 epochs.
  assert own.epochs == 4.0
  assert c.optim.warmup_epochs == pytest.approx(own.optim.warmup_epochs / 16)
  assert c.dino.warmup_teacher_temperature_epochs == pytest.approx(1.0 / 16)
  assert c.dino.freeze_last_layer_epochs == pytest.approx(0.2 / 16)
  assert parsed(cr.Job("mae")).optim.warmup_epochs == pytest.approx(0.3 / 10)  # of 2.5


def test_the_appendix_d3_run_adds_the_noise_to_every_view():
  c = parsed(cr.Job("byol", "gaussian_noise", 5, augmented=True))
  assert (c.data.corruption, c.data.severity) == ("gaussian_noise", 5)
  views = view_recipes(c, 28)
  assert len(views) == 2
  assert all((v.noise_prob, v.noise_std) == (0.5, 0.38) for v in views)
  plain = view_recipes(parsed(cr.Job("byol", "gaussian_noise", 5)), 28)
  assert all(v.noise_prob == 0.0 for v in plain)


def fake_run(workdir: Path, accuracy: float, epochs: float = EPOCHS) -> None:
  """What a finished `jejax.main` run leaves behind, as far as the script reads it."""
  workdir.mkdir(parents=True, exist_ok=True)
  config = config_lib.base_config()
  config.epochs = epochs
  (workdir / "config.json").write_text(config.to_json_best_effort())
  (workdir / "summary.json").write_text(json.dumps(
      {"linear_probe_accuracy": accuracy, "wall_seconds": 1.0, "steps": 59}))


def test_finished_runs_are_skipped_and_failed_ones_left_out(tmp_path, monkeypatch):
  done, todo, failing = (cr.Job("mae", "pixelate", 1), cr.Job("mae", "pixelate", 5),
                         cr.Job("byol", "pixelate", 5))
  fake_run(done.workdir(tmp_path), 0.7)
  (done.workdir(tmp_path) / "corruption.log").write_text("commit abc1234\n")
  commands = []
  git = subprocess.run

  def run(command, **kwargs):
    if command[0] == "git":  # the commit a run is logged with
      return git(command, **kwargs)
    commands.append(command)
    workdir = Path(next(a for a in command if a.startswith("--workdir="))[len("--workdir="):])
    if "byol" in workdir.parts:
      raise subprocess.CalledProcessError(2, command)
    fake_run(workdir, 0.6)

  monkeypatch.setattr(subprocess, "run", run)
  summaries = cr.run_all([done, todo, failing], tmp_path, EPOCHS)
  assert [Path(c[c.index("-m") + 2][len("--config="):]).stem for c in commands] == [
      "mae", "byol"]  # the finished run did not start again
  assert "--config.data.severity=5" in commands[0]
  assert list(summaries) == [done, todo]
  assert summaries[done]["linear_probe_accuracy"] == 0.7
  assert summaries[done]["commits"] == ["abc1234"]


def test_no_run_starts_after_the_deadline_but_finished_ones_are_read(tmp_path, monkeypatch):
  done, todo = cr.Job("mae", "pixelate", 5), cr.Job("mae", "pixelate", 1)
  fake_run(done.workdir(tmp_path), 0.7)
  (done.workdir(tmp_path) / "corruption.log").write_text("commit abc1234\n")
  commands = []
  monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
  summaries = cr.run_all([todo, done], tmp_path, EPOCHS, deadline=time.monotonic() - 1)
  assert commands == [] and list(summaries) == [done]
  assert cr.parse_args(["--hours", "2"])[0].hours == 2
  assert cr.parse_args([])[0].hours == float("inf")


def test_the_default_workdir_keeps_in_git_what_the_report_reads_and_nothing_else():
  assert cr.parse_args([])[0].workdir == cr.RESULTS
  run = cr.Job("byol", "pixelate", 3).workdir(cr.RESULTS).relative_to(REPO)
  augmented = cr.Job(*cr.AUGMENTED, augmented=True).workdir(cr.RESULTS).relative_to(REPO)
  kept = [run / "summary.json", run / "config.json", run / "corruption.log",
          augmented / "summary.json"]
  left_out = [run / "metrics.jsonl", run / "training.png", run / "checkpoints" / "585",
              run / "checkpoints" / "585" / "_METADATA",
              cr.RESULTS.relative_to(REPO) / "results.json"]
  ignored = subprocess.run(["git", "check-ignore", "--no-index", *map(str, kept + left_out)],
                           cwd=REPO, capture_output=True, text=True).stdout.split()
  assert ignored == [str(path) for path in left_out]


def test_a_run_of_another_budget_is_refused_not_reused(tmp_path):
  job = cr.Job("mae", "pixelate", 1)
  fake_run(job.workdir(tmp_path), 0.7, epochs=1.0)
  with pytest.raises(SystemExit, match="1 epochs, not 0.25"):
    cr.run_all([job], tmp_path, EPOCHS)


def test_drop_is_in_points_from_severity_1_to_5():
  assert cr.drop({1: 0.80, 3: 0.75, 5: 0.62}) == pytest.approx(18.0)
  assert cr.drop({1: 0.80, 3: 0.75}) is None


def results(mae=(0.80, 0.70, 0.60), byol=(0.80, 0.78, 0.74)):
  s = {cr.Job("mae"): summary(0.82, 0.78), cr.Job("byol"): summary(0.76, 0.78)}
  for method, accuracies in (("mae", mae), ("byol", byol)):
    for severity, accuracy in zip((1, 3, 5), accuracies):
      s[cr.Job(method, "pixelate", severity)] = summary(accuracy)
  return s


def test_table_rows_hold_accuracies_drops_and_the_papers_drop():
  table = cr.robustness_table(results(), ("byol", "mae"), ("pixelate", "zoom_blur"),
                              (1, 3, 5))
  lines = table.splitlines()
  assert lines[0].startswith("| corruption | method | family | severity 1 |")
  assert len(lines) == 2 + 4 and all(line.count("|") == lines[0].count("|") for line in lines)
  assert ("| pixelate | mae | reconstruction | 0.8000 | 0.7000 | 0.6000 | 20.0 | 25.0% | "
          "27.9 |") in lines
  assert ("| pixelate | byol | joint embedding | 0.8000 | 0.7800 | 0.7400 | 6.0 | 7.5% | "
          "12.0 |") in lines
  assert "| zoom_blur | mae | reconstruction | - | - | - | - | - | 20.0 |" in lines


def test_ordering_says_when_reconstruction_drops_more_and_when_not():
  assert cr.ordering(results(), ("byol", "mae"), ("pixelate",)) == (
      "- pixelate: yes (drops in points: byol 6.0, mae 20.0)")
  # Negative control: the joint-embedding method loses more.
  flipped = results(mae=(0.8, 0.79, 0.78), byol=(0.8, 0.7, 0.6))
  assert cr.ordering(flipped, ("byol", "mae"), ("pixelate",)).startswith("- pixelate: no")
  assert cr.ordering(results(), ("byol", "mae"), ("zoom_blur",)) == "- zoom_blur: incomplete"


def test_baseline_table_says_which_methods_beat_their_random_init():
  lines = cr.baseline_table(results(), ("byol", "mae", "dino")).splitlines()
  assert "| byol | vit micro/4 | 0.7600 | 0.7800 | -2.00 | 500 | 100 |" in lines
  assert "| mae | vit micro/4 | 0.8200 | 0.7800 | +4.00 | 500 | 100 |" in lines
  assert "| dino | - | - | - | - | - | - |" in lines


def test_the_readme_has_one_place_for_the_tables_and_the_command_is_named():
  readme = (REPO / "README.md").read_text()
  start, end = cr.README_MARKERS
  assert readme.count(start) == 1 and readme.count(end) == 1
  args, defaults = cr.parse_args([])
  assert cr.command_line(args, defaults) == "python experiments/corruption_robustness.py"
  args, _ = cr.parse_args(["--methods", "byol,mae", "--epochs", "0.5"])
  assert cr.command_line(args, defaults) == (
      "python experiments/corruption_robustness.py --methods byol,mae --epochs 0.5")
  args, _ = cr.parse_args(["--clean-only", "--epochs", "1"])
  assert cr.command_line(args, defaults) == (
      "python experiments/corruption_robustness.py --epochs 1 --clean-only")
  with pytest.raises(SystemExit):
    cr.parse_args(["--methods", "byol,swav"])
