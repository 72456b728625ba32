"""Errors raised while finding, reading and batching data.

Every error derives from `DataError`, so a caller can catch the whole family; the ones
that also mean a bad argument or a missing file derive from the matching built-in too
(`ValueError`, `FileNotFoundError`), so generic handlers keep working.
"""

from jejax.errors import JejaxError


class DataError(JejaxError):
  """Base class of every data-loading error in jejax."""
  hint = ("`python -m jejax.data.check <name>` says whether a dataset loads; data.data_dir "
          "(or $JEJAX_DATA_DIR) points jejax at other files")


class UnknownDatasetError(DataError, ValueError):
  """The dataset name is neither an offline dataset nor a TFDS builder."""


class DataNotFoundError(DataError, FileNotFoundError):
  """The dataset is known, but its files are not on this machine."""


class CorruptDataError(DataError):
  """A data file exists but cannot be parsed, or its contents are inconsistent."""


class ImageShapeError(DataError, ValueError):
  """Images have the wrong dtype, rank or channels, differ in shape within a batch, or do
  not match the shape the model is configured for."""
