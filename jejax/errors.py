"""jejax's own errors: the ones whose message says what went wrong and what to do.

Every error that jejax raises on purpose (a bad config value, missing or corrupt data, a
refused resume, a checkpoint of another model, no readable checkpoint, a workdir in use,
a diverged run) derives from `JejaxError`. The commands (`python -m jejax.main`,
`python -m jejax.embed`) print such an error as `error: <message>` and `hint: <hint>`
on stderr and exit with status 2, without a traceback; any other exception is a bug or
an environment failure and keeps its traceback.

  >>> from jejax.checks import ConfigError
  >>> print(describe(ConfigError("config.batch_size=0: must be positive")))
  error: config.batch_size=0: must be positive
  hint: fix that value on the command line (--config.<field>=...) or in the config file
"""

from __future__ import annotations

import sys

EXIT_STATUS = 2  # as argparse's usage errors: the input was refused, nothing crashed


class JejaxError(Exception):
  """Base of the errors jejax explains itself; `hint` says what to do about it."""
  hint: str = ""


def describe(error: JejaxError) -> str:
  """What a command prints for `error`: its message, then its hint (if it has one)."""
  hint = f"\nhint: {error.hint}" if error.hint else ""
  return f"error: {error}{hint}"


def exit_with(error: JejaxError) -> None:
  """Prints `describe(error)` to stderr and exits with `EXIT_STATUS`."""
  print(describe(error), file=sys.stderr, flush=True)
  raise SystemExit(EXIT_STATUS)
