"""The metrics log of a run: `metrics.jsonl` (one strict JSON object per logged step) and,
beside it, TensorBoard event files (`tensorboard --logdir <workdir>`, or any viewer that
reads them).

JSON has no NaN or infinity: Python's `json.dumps` writes the bare literals `NaN` and
`Infinity`, which strict readers (`jq`, JavaScript, most JSON libraries) reject. So a
non-finite number is written as `null`, and read back as NaN. TensorBoard's scalars keep
NaN and inf as they are. The event files are written with tensorboardX, which does not
import TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import tensorboardX

METRICS_FILE = "metrics.jsonl"


def _finite_or_none(value: Any) -> Any:
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite_or_none(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite_or_none(v) for v in value]
  return value


def dumps(value: Any, **kwargs: Any) -> str:
  """`json.dumps` with NaN and +-inf written as null: always valid JSON.

  >>> dumps({'loss': float('nan'), 'step': 3})
  '{"loss": null, "step": 3}'
  """
  return json.dumps(_finite_or_none(value), allow_nan=False, **kwargs)


def _none_to_nan(record: dict[str, Any]) -> dict[str, Any]:
  return {k: float("nan") if v is None else v for k, v in record.items()}


def read_records(path: str | os.PathLike, up_to_step: int | None = None) -> list[dict]:
  """The records of a metrics.jsonl (nulls back to NaN), those up to `up_to_step` when
  given: a resumed run drops what the interrupted run logged after its last checkpoint,
  since those steps are run again."""
  path = Path(path)
  if not path.exists():
    return []
  records = [_none_to_nan(json.loads(line)) for line in path.read_text().splitlines()
             if line.strip()]
  return [r for r in records if up_to_step is None or r["step"] <= up_to_step]


class MetricsLog:
  """Appends records to `<workdir>/metrics.jsonl` and to TensorBoard event files.

  Opening rewrites metrics.jsonl with `records` (the ones kept on resuming from
  `start_step`) and tells TensorBoard to hide what an earlier writer logged after
  `start_step` (the steps are run again). With `enabled=False` (every process but
  process 0 of a multi-process run) it writes nothing.
  """

  def __init__(self, workdir: str | os.PathLike, records: list[dict], *, start_step: int,
               enabled: bool = True):
    self.enabled = enabled
    self._file = self._events = None
    if not enabled:
      return
    path = Path(workdir) / METRICS_FILE
    path.write_text("".join(dumps(r) + "\n" for r in records))
    self._file = open(path, "a")
    self._events = tensorboardX.SummaryWriter(str(workdir), purge_step=start_step + 1)

  def write(self, record: dict[str, Any]) -> None:
    """Appends one record ({'step': int, name: number, ...}) and flushes it to disk."""
    if not self.enabled:
      return
    self._file.write(dumps(record) + "\n")
    self._file.flush()
    for name, value in record.items():
      if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
        self._events.add_scalar(name, value, record["step"])
    self._events.flush()

  def close(self) -> None:
    if self.enabled:
      self._file.close()
      self._events.close()

  def __enter__(self) -> MetricsLog:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
