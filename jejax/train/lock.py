"""One run per workdir: a lock held while a run uses its directory.

Two runs in one workdir would both append to metrics.jsonl and race to write the same
checkpoints. The lock is the kernel's (`fcntl.flock` on `<workdir>/run.lock`), so it is
released whenever the holding process ends, however it ends (also `kill -9` or a crash):
a stale lock file never blocks the next run. The file itself only records who holds the
lock (pid, host, start time), so that a refused run can name the holder; it is left in
place on release (deleting it would let a third process lock a fresh file while a second
still waits on the old one).

`flock` works on local file systems and, on Linux, on NFS (emulated with byte-range
locks); a file system without locks fails with the OS error rather than run unlocked.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from jejax import parallel
from jejax.errors import JejaxError

LOCK_FILE = "run.lock"


class WorkdirLockedError(JejaxError):
  """Another run holds the workdir; the message names it."""
  hint = "wait for that run to end (or stop it), or give this run another --workdir"


def _holder(fd: int) -> str:
  """Who the lock file says holds it, as 'pid 123 on host, since <time>'."""
  try:
    info = json.loads(os.pread(fd, 4096, 0).decode())
    return f"pid {info['pid']} on {info['host']}, since {info['started']}"
  except (ValueError, KeyError, OSError):  # the holder has not written it yet
    return "a process that has not yet recorded its pid"


@contextlib.contextmanager
def hold(workdir: str | os.PathLike) -> Iterator[None]:
  """Holds `workdir`'s lock for the body, or raises `WorkdirLockedError` naming the
  holder. `workdir` must exist."""
  path = Path(workdir) / LOCK_FILE
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirLockedError(f"{Path(workdir).absolute()} is in use by another run "
                               f"({_holder(fd)}; lock file {path})") from None
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "started": started}).encode(), 0)
    yield
  finally:
    os.close(fd)  # closing the last descriptor releases the lock


@contextlib.contextmanager
def hold_for_run(workdir: str | os.PathLike) -> Iterator[None]:
  """`hold` for a run of one or several processes: process 0 locks the workdir for all
  of them (they share it), and a refusal stops every process (a collective), so none is
  left waiting for the others at the next collective."""
  with contextlib.ExitStack() as stack:
    refusal = None
    if parallel.is_main_process():
      try:
        stack.enter_context(hold(workdir))
      except WorkdirLockedError as e:
        refusal = e
    if parallel.any_process(refusal is not None):
      raise refusal or WorkdirLockedError(
          f"{Path(workdir).absolute()} is in use by another run (process 0 was refused "
          "its lock)")
    yield
