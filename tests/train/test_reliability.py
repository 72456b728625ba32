"""What a run does when something goes wrong, checked the way a user meets it:

- a run that diverges stops at once (non-zero exit, the step named), and the finite
  checkpoint before it survives; with `skip_nonfinite` it skips such steps instead;
- an unreadable newest checkpoint is moved aside and the run resumes from the older one;
  with none readable, one error names the directory and nothing is moved;
- a second run in a workdir is refused, naming the holder, while a killed holder does not
  block the next run;
- `kill -9` in the middle of a run, then resuming, ends bitwise where an unbroken run ends;
- jejax's own errors print as one line plus a hint, exit status 2, no traceback;
- metrics.jsonl stays strict JSON (NaN as null), with TensorBoard events beside it.

The subprocess tests run `python -m jejax.main` with the tiny test model written to a
config file. jejax's newer names are imported inside the tests, so that each test fails
on its own on code that lacks the behaviour.
"""

import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jejax.train import checkpoint, loop
from jejax.train.run import Run

REPO = pathlib.Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 300


def strict_json(text: str):
  """json.loads that refuses NaN, Infinity and -Infinity, as strict JSON readers do."""
  def refuse(name):
    raise ValueError(f"not JSON: {name}")
  return json.loads(text, parse_constant=refuse)


def strict_records(workdir: pathlib.Path) -> list[dict]:
  return [strict_json(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def write_config_file(c, path: pathlib.Path) -> pathlib.Path:
  """A config file for `--config` that builds exactly `c`."""
  path.write_text("import json\nfrom jejax import config\n\n\ndef get_config():\n"
                  f"  return config.config_from_dict(json.loads({c.to_json_best_effort()!r}))\n")
  return path


def cli_env() -> dict[str, str]:
  # The test process's own settings (8 fake CPU devices, CPU only), this checkout first.
  return {**os.environ, "PYTHONPATH": str(REPO)}


def run_cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "jejax.main", *args], cwd=REPO, env=cli_env(),
                        capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def assert_error_lines(stderr: str, *fragments: str) -> str:
  """stderr ends with 'error: ...' (holding every fragment) and 'hint: ...', after no
  traceback; returns the error line."""
  assert "Traceback" not in stderr, stderr[-3000:]
  lines = [line for line in stderr.splitlines() if line.strip()]
  error, hint = lines[-2:]
  assert error.startswith("error: ") and hint.startswith("hint: "), stderr[-3000:]
  for fragment in fragments:
    assert fragment in error, error
  return error


def restore(c, checkpoint_dir: pathlib.Path):
  """The latest state in `checkpoint_dir`, read through a fresh Run of `c`."""
  run = Run(c, checkpoint_dir.parent)
  return checkpoint.Checkpointer(checkpoint_dir, every_steps=1, keep=10).restore_latest(
      run.abstract_state, set_aside_unreadable=False)


def all_finite(tree) -> bool:
  return all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(tree))
             if np.issubdtype(np.asarray(x).dtype, np.inexact))


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def diverging_config(tiny_config):
  """BYOL on the tiny model with SGD at lr 1e8: the warmup starts at 0, so the first steps
  are finite; the loss turns NaN a few steps in (step 5 on this model)."""
  c = tiny_config("byol")
  c.optim.name = "sgd"
  c.optim.learning_rate = 1e8
  c.num_steps = 12
  c.checkpoint.every_steps = 1  # a checkpoint at every finite step: the last must survive
  c.checkpoint.keep = 2
  c.eval.probe_epochs, c.eval.probe_random_init = 1, False  # short, where it is reached
  return c


def test_a_diverging_run_stops_and_keeps_its_finite_checkpoint(tmp_path, tiny_config):
  c = diverging_config(tiny_config)
  workdir = tmp_path / "run"
  result = run_cli("--config", str(write_config_file(c, tmp_path / "config.py")),
                   "--workdir", str(workdir))
  assert result.returncode == 2, result.stderr[-3000:]

  records = strict_records(workdir)  # NaN is logged as null, not as a bare NaN
  first_nan = next(r["step"] for r in records if r["loss"] is None)
  assert 2 < first_nan < c.num_steps  # the negative control: the run did diverge
  assert records[-1]["step"] == first_nan  # stopped at once: nothing logged after it
  assert all(r["loss"] is not None for r in records[:-1])
  assert_error_lines(result.stderr, "training diverged", f"step {first_nan}",
                     f"the latest checkpoint, step {first_nan - 1}")

  # The finite checkpoints stay (keep=2), none of a NaN state was written.
  steps = checkpoint.Checkpointer(workdir / "checkpoints", every_steps=1, keep=2).manager.all_steps()
  assert sorted(steps) == [first_nan - 2, first_nan - 1]
  state = restore(c, workdir / "checkpoints")
  assert int(state.step) == first_nan - 1 and all_finite(state)
  assert not (workdir / "summary.json").exists()  # no evaluation of a diverged run


def test_skip_nonfinite_skips_the_bad_steps_and_keeps_a_finite_state(tmp_path, tiny_config):
  c = diverging_config(tiny_config)
  c.num_steps = 8
  c.skip_nonfinite = True
  _, state, records = loop.train(c, tmp_path)
  assert int(state.step) == c.num_steps and all_finite(state)
  on_disk = strict_records(tmp_path)
  assert [r["step"] for r in on_disk] == [r["step"] for r in records] == list(range(1, 9))
  skipped = [r["skipped_steps"] for r in on_disk]
  assert skipped == sorted(skipped) and 0 < skipped[-1] < c.num_steps
  # Without skipping, this run's loss is NaN from a few steps on (the test above); here
  # every update that would have been non-finite was dropped, so every loss is finite.
  assert all(r["loss"] is not None for r in on_disk)


def corrupt(step_dir: pathlib.Path) -> None:
  """Truncates every data file of an orbax checkpoint to half its size."""
  for path in step_dir.rglob("*"):
    if path.is_file() and path.parent.name == "d":
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_an_unreadable_checkpoint_is_set_aside_and_an_older_one_resumed(tmp_path, tiny_config,
                                                                        capfd):
  c = tiny_config("simclr")
  c.num_steps = 6
  c.checkpoint.every_steps = 2
  c.checkpoint.keep = 3
  _, at_4, _ = loop.train(c, tmp_path, stop_at_step=4)  # checkpoints 2 and 4
  at_4 = jax.device_get(at_4)
  checkpoints, aside = tmp_path / "checkpoints", tmp_path / "checkpoints_unreadable"
  corrupt(checkpoints / "4")
  truncated = {p.relative_to(checkpoints / "4"): p.read_bytes()
               for p in (checkpoints / "4").rglob("*") if p.is_file()}
  capfd.readouterr()

  _, resumed, records = loop.train(c, tmp_path, stop_at_step=4)  # from 2, steps 3 and 4 again
  out, err = capfd.readouterr()
  assert "resumed from step 2" in out
  assert f"WARNING: checkpoint step 4 in {checkpoints} cannot be read" in err
  assert f"moved to {aside / '4'}" in err
  assert_trees_equal(resumed, at_4)  # the steps run again end where they ended before
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  # Moved aside as it was, not deleted; a new step 4 was written in its place.
  assert {p.relative_to(aside / "4"): p.read_bytes()
          for p in (aside / "4").rglob("*") if p.is_file()} == truncated
  assert sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()) == [2, 4]

  # None readable: one error that names the directory, and nothing moved.
  from jejax.train.checkpoint import UnreadableCheckpointsError

  corrupt(checkpoints / "2")
  corrupt(checkpoints / "4")
  with pytest.raises(UnreadableCheckpointsError, match=f"none of the 2 checkpoints in {checkpoints}"):
    loop.train(c, tmp_path)
  assert sorted(p.name for p in checkpoints.iterdir() if p.name.isdigit()) == ["2", "4"]
  assert sorted(p.name for p in aside.iterdir()) == ["4"]


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
  from jejax.train import lock

  holder = subprocess.Popen(
      [sys.executable, "-c",
       "import sys, time\nfrom jejax.train import lock\n"
       "with lock.hold(sys.argv[1]):\n  print('held', flush=True)\n  time.sleep(600)\n",
       str(tmp_path)], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(lock.WorkdirLockedError, match=f"pid {holder.pid} on "):
      with lock.hold(tmp_path):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)  # no chance to clean up: the kernel releases it
    holder.wait()
  with lock.hold(tmp_path):
    assert json.loads((tmp_path / lock.LOCK_FILE).read_text())["pid"] == os.getpid()


def wait_for_checkpoint(workdir: pathlib.Path, process: subprocess.Popen) -> None:
  """Waits until the run in `workdir` has a complete checkpoint (orbax renames a step's
  directory to its number once written) and has logged a step after it."""
  deadline = time.monotonic() + CLI_TIMEOUT_S
  checkpoints, metrics = workdir / "checkpoints", workdir / "metrics.jsonl"
  while time.monotonic() < deadline:
    assert process.poll() is None, (workdir.parent / "killed.log").read_text()[-3000:]
    saved = [int(p.name) for p in checkpoints.iterdir()
             if p.name.isdigit()] if checkpoints.exists() else []
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    logged = [strict_json(line)["step"] for line in lines if line.endswith("}")]
    if saved and logged and logged[-1] > max(saved):
      return
    time.sleep(0.1)
  pytest.fail(f"the run saved no checkpoint in {CLI_TIMEOUT_S} s")


def test_a_killed_run_resumes_exactly_and_holds_its_workdir_while_alive(tmp_path, tiny_config,
                                                                         capsys):
  c = tiny_config("byol")  # EMA target: state beyond the params to resume
  c.num_steps = 100_000  # far more than the test lets it run: it is killed mid-run
  c.checkpoint.every_steps = 5
  workdir = tmp_path / "killed"
  with open(tmp_path / "killed.log", "w") as log:
    process = subprocess.Popen(
        [sys.executable, "-m", "jejax.main", "--config",
         str(write_config_file(c, tmp_path / "config.py")), "--workdir", str(workdir)],
        cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT)
  try:
    wait_for_checkpoint(workdir, process)
    # A second run in the same workdir is refused while the first is alive. (Stopped at
    # step 1, so that where nothing refuses it, it returns at once instead of training.)
    with pytest.raises(Exception, match=f"pid {process.pid} on ") as refused:
      loop.train(c, workdir, stop_at_step=1)
    assert type(refused.value).__name__ == "WorkdirLockedError"
  finally:
    process.send_signal(signal.SIGKILL)
    process.wait()
  logged = strict_records(workdir)[-1]["step"]
  saved = checkpoint.Checkpointer(workdir / "checkpoints", every_steps=5, keep=2).latest_step()
  assert 5 <= saved <= logged

  # The same run again (its lock died with it), and an unbroken one, to the same step.
  stop = logged + 3
  capsys.readouterr()
  _, resumed, resumed_records = loop.train(c, workdir, stop_at_step=stop)
  assert f"resumed from step {saved}" in capsys.readouterr().out
  _, unbroken, unbroken_records = loop.train(c, tmp_path / "unbroken", stop_at_step=stop)
  assert int(resumed.step) == stop
  assert_trees_equal(resumed, unbroken)
  # Each step logged once (what the killed run logged after its checkpoint is dropped),
  # with the unbroken run's losses.
  assert [r["step"] for r in strict_records(workdir)] == list(range(1, stop + 1))
  np.testing.assert_array_equal([r["loss"] for r in resumed_records],
                                [r["loss"] for r in unbroken_records])


@pytest.mark.parametrize("case", ["bad_value", "other_settings"])
def test_command_line_errors_are_one_line_and_a_hint(case, tmp_path, tiny_config):
  c = tiny_config("simclr")
  workdir = tmp_path / "run"
  args = ["--config", str(write_config_file(c, tmp_path / "config.py")),
          "--workdir", str(workdir)]
  if case == "bad_value":
    args.append("--config.batch_size=0")
    expected = ("config.batch_size=0: must be positive",)
  else:  # the workdir holds a run with another schedule
    workdir.mkdir()
    (workdir / "checkpoints" / "10").mkdir(parents=True)
    saved = json.loads(c.to_json_best_effort())
    saved["num_steps"] = 999
    (workdir / "config.json").write_text(json.dumps(saved))
    expected = (f"{workdir} holds a run with other settings for ['num_steps']",)
  result = run_cli(*args)
  assert result.returncode == 2, result.stderr[-3000:]
  assert_error_lines(result.stderr, *expected)


def read_tensorboard_scalars(workdir: pathlib.Path) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} from the TFRecord event files in `workdir`, parsed here (length,
  CRC, Event proto) rather than by the library that wrote them."""
  from tensorboardX.proto import event_pb2

  scalars = {}
  for path in sorted(workdir.glob("events.out.tfevents.*")):
    data, offset = path.read_bytes(), 0
    while offset < len(data):
      (length,) = struct.unpack_from("<Q", data, offset)
      event = event_pb2.Event.FromString(data[offset + 12: offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        scalars.setdefault(value.tag, {})[event.step] = value.simple_value
  return scalars


def test_the_metrics_log_is_strict_json_with_tensorboard_events_beside_it(tmp_path):
  from jejax.train import metrics_log

  with metrics_log.MetricsLog(tmp_path, [{"step": 1, "loss": 2.0}], start_step=1) as log:
    log.write({"step": 2, "loss": float("nan"), "knn_accuracy": 0.5})
    log.write({"step": 3, "loss": float("inf"), "learning_rate": 1e-3})
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert [strict_json(line) for line in lines] == [
      {"step": 1, "loss": 2.0}, {"step": 2, "loss": None, "knn_accuracy": 0.5},
      {"step": 3, "loss": None, "learning_rate": 1e-3}]
  back = metrics_log.read_records(tmp_path / "metrics.jsonl", up_to_step=2)
  assert [r["step"] for r in back] == [1, 2] and np.isnan(back[1]["loss"])
  scalars = read_tensorboard_scalars(tmp_path)
  assert scalars["knn_accuracy"] == {2: 0.5}
  assert np.isnan(scalars["loss"][2]) and scalars["loss"][3] == np.inf
  # Writing the events does not import TensorFlow (not even when it is installed).
  probe = ("import sys, tempfile\nfrom jejax.train import metrics_log\n"
           "with metrics_log.MetricsLog(tempfile.mkdtemp(), [], start_step=0) as log:\n"
           "  log.write({'step': 1, 'loss': 1.0})\n"
           "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))\n")
  result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == "[]"
