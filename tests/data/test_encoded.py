"""Encoded images in array_record files: lossless round trips, resizing, bad records
named by file and index, and batches decoded in worker processes equal to the in-memory
path's for the same (seed, step): another process's rows, resumed mid-run, up to a bad
record, which is raised at its step.

Worker processes take seconds to start (each imports jax and jejax), so one module
fixture starts them once, and the tests compare its batches with references made in this
process."""

import io
import pickle
import struct

import cloudpickle
import numpy as np
import pytest
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from PIL import Image

from jejax.data import (
    ArraySource,
    CorruptDataError,
    DataNotFoundError,
    EncodedSource,
    TfdsSource,
    batch_indices,
    sources,
    train_batches,
    write_encoded_images,
)


def encode(image: np.ndarray, fmt: str = "JPEG") -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
  return buffer.getvalue()


def photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """(h, w, 3) uint8: smooth colour gradients plus noise, so JPEG has detail to lose."""
  y, x = np.mgrid[0:h, 0:w] / max(h, w)
  base = np.stack([x, y, (x + y) / 2], -1) * rng.uniform(100, 255, 3)
  return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


# The shared stream: records 0-15 PNGs of SIZE x SIZE px (lossless, so the in-memory
# images are the pixels written), 16-29 JPEGs of 20-33 x 30 px (decoded and resized to
# SIZE), 30 not an image; labels i % 4. The second of two processes (rows 4-7 of a
# global batch of 8) resumes at step 2; 3 steps per epoch, so it crosses epochs, and with
# seed 2 record 30 first falls in its rows at step 6 (checked by the fixture).
NUM_PNG, NUM_JPEG, SIZE = 16, 14, 12
N = NUM_PNG + NUM_JPEG + 1
LABELS = np.arange(N) % 4
BATCH, SEED, START, ROWS, BAD_STEP = 8, 2, 2, np.arange(4, 8), 6


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
  """The files, the in-memory images (the PNG pixels, the JPEGs decoded here with PIL
  and resized, zeros for the bad record), and what `train_batches(workers=2)` gave:
  the batches of steps START..BAD_STEP - 1 and the error raised at BAD_STEP."""
  folder = tmp_path_factory.mktemp("encoded")
  rng = np.random.default_rng(0)
  pngs = rng.integers(0, 256, (NUM_PNG, SIZE, SIZE, 3), np.uint8)
  jpegs = [encode(photo(rng, 20 + i, 30)) for i in range(NUM_JPEG)]
  paths = [folder / f"{kind}.array_record" for kind in ("png", "jpeg", "bad")]
  write_encoded_images(paths[0], [encode(im, "PNG") for im in pngs], LABELS[:NUM_PNG])
  write_encoded_images(paths[1], jpegs, LABELS[NUM_PNG:-1])
  write_encoded_images(paths[2], [b"not an image"], LABELS[-1:])
  decoded = [sources.resize_and_center_crop(
      np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")), SIZE) for jpeg in jpegs]
  images = np.concatenate([pngs, np.stack(decoded), np.zeros((1, SIZE, SIZE, 3), np.uint8)])
  first_bad = next(step for step in range(START, 100)
                   if N - 1 in batch_indices(N, BATCH, SEED, step)[ROWS])
  assert first_bad == BAD_STEP

  source = EncodedSource(paths, num_classes=4, image_size=SIZE)
  batches = train_batches(source, BATCH, seed=SEED, start_step=START,
                          num_steps=BAD_STEP - START + 1, rows=ROWS, workers=2)
  from_workers, error = [], None
  try:
    for batch in batches:
      from_workers.append(batch)
  except CorruptDataError as e:
    error = e
  finally:
    batches.close()
  return {"source": source, "images": images, "batches": from_workers, "error": error}


def assert_same_batches(batches, expected, count):
  seen = 0
  for got, want in zip(batches, expected):
    assert got.keys() == want.keys()
    for key in want:
      # Plain arrays: with 2 workers grain hands them over in shared memory.
      assert type(got[key]) is np.ndarray and got[key].dtype == want[key].dtype
      np.testing.assert_array_equal(got[key], want[key])
    seen += 1
  assert seen == count


def test_workers_give_the_in_thread_batches_and_error(stream):
  in_thread = train_batches(stream["source"], BATCH, seed=SEED, start_step=START,
                            num_steps=BAD_STEP - START + 1, rows=ROWS)
  assert_same_batches(stream["batches"], in_thread, BAD_STEP - START)
  with pytest.raises(CorruptDataError) as error:
    next(in_thread)
  assert str(error.value) == str(stream["error"])


def test_worker_batches_equal_the_in_memory_path(stream):
  # PNG rows are the pixels written; JPEG rows the same bytes decoded in this process.
  in_memory = ArraySource(images=stream["images"], labels=LABELS.astype(np.int32),
                          num_classes=4, name="in memory")
  expected = train_batches(in_memory, BATCH, seed=SEED, start_step=START,
                           num_steps=BAD_STEP - START, rows=ROWS)
  assert_same_batches(stream["batches"], expected, BAD_STEP - START)
  read = np.concatenate([batch_indices(N, BATCH, SEED, s)[ROWS]
                         for s in range(START, BAD_STEP)])
  assert (read < NUM_PNG).any() and (read >= NUM_PNG).any()  # both encodings compared


def test_resumed_rows_continue_the_unbroken_global_stream(stream):
  # The global batches of an unbroken run from step 0, in memory; this process holds
  # rows 4-7 of each, and the labels are checked against the index arithmetic too.
  in_memory = ArraySource(images=stream["images"], labels=LABELS.astype(np.int32),
                          num_classes=4, name="in memory")
  unbroken = list(train_batches(in_memory, BATCH, seed=SEED, num_steps=BAD_STEP))
  expected = [{k: v[ROWS] for k, v in batch.items()} for batch in unbroken[START:]]
  assert_same_batches(stream["batches"], expected, BAD_STEP - START)
  for step, batch in enumerate(stream["batches"], START):
    np.testing.assert_array_equal(batch["label"],
                                  LABELS[batch_indices(N, BATCH, SEED, step)[ROWS]])
  # A negative control: the first process's rows are other images.
  assert not np.array_equal(stream["batches"][0]["image"], unbroken[START]["image"][:4])


def test_a_bad_record_in_a_worker_is_raised_at_its_step_naming_it(stream):
  assert len(stream["batches"]) == BAD_STEP - START  # the steps before it all arrived
  assert isinstance(stream["error"], CorruptDataError)
  assert str(stream["error"]).endswith(
      "bad.array_record, record 0: not a labelled image: no image format PIL reads "
      "starts with its bytes b'not an i'")


def test_png_images_read_back_exactly_across_files(tmp_path):
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (7, 8, 8, 3), np.uint8)
  write_encoded_images(tmp_path / "a.array_record", [encode(im, "PNG") for im in images[:4]],
                       range(4))
  write_encoded_images(tmp_path / "b.array_record", [encode(im, "PNG") for im in images[4:]],
                       range(4, 7))
  source = EncodedSource([tmp_path / "a.array_record", tmp_path / "b.array_record"],
                         num_classes=7, image_size=8)
  assert len(source) == 7 and source.image_shape == (8, 8, 3)
  batch = source.get_batch(np.array([6, 0, 4, 3]))
  np.testing.assert_array_equal(batch["image"], images[[6, 0, 4, 3]])  # lossless, no resize
  np.testing.assert_array_equal(batch["label"], [6, 0, 4, 3])
  assert batch["label"].dtype == np.int32
  empty = source.get_batch(np.array([], int))
  assert empty["image"].shape == (0, 8, 8, 3) and empty["label"].shape == (0,)


def test_images_are_converted_resized_and_centre_cropped(tmp_path):
  gray = np.random.default_rng(2).integers(0, 256, (12, 20), np.uint8)
  write_encoded_images(tmp_path / "g.array_record", [encode(gray, "PNG")], [0])
  rgb = EncodedSource(tmp_path / "g.array_record", num_classes=1, image_size=6)
  one = EncodedSource(tmp_path / "g.array_record", num_classes=1, image_size=6, channels=1)
  expected = sources.resize_and_center_crop(gray[..., None], 6)
  np.testing.assert_array_equal(one.get_batch(np.array([0]))["image"][0], expected)
  # A grayscale image read as RGB: three equal channels.
  np.testing.assert_array_equal(rgb.get_batch(np.array([0]))["image"][0],
                                np.repeat(expected, 3, -1))


def test_a_bad_record_is_named_by_file_and_index(tmp_path):
  good = encode(photo(np.random.default_rng(4), 24, 24))
  write_encoded_images(tmp_path / "good.array_record", [good] * 3, [0] * 3)
  bad = {2: b"not an image", 3: good[:len(good) // 2]}  # garbage, truncated
  path = tmp_path / "bad.array_record"
  writer = array_record_module.ArrayRecordWriter(str(path), "group_size:1")
  for i in range(6):  # the layout of write_encoded_images, but record 4 is too short
    writer.write(b"\x01" if i == 4 else struct.pack("<i", 0) + bad.get(i, good))
  writer.close()
  source = EncodedSource([tmp_path / "good.array_record", path], num_classes=4,
                         image_size=16)
  assert source.get_batch(np.array([0, 3 + 1, 3 + 5]))["image"].shape == (3, 16, 16, 3)
  for index, what in ((2, "no image format .* b'not an i'"), (3, "[Tt]runcated"),
                      (4, "fewer than")):
    with pytest.raises(CorruptDataError, match=f"bad.array_record, record {index}: .*{what}"):
      source.get_batch(np.array([0, 3 + index]))


def test_a_file_that_is_missing_or_not_array_record(tmp_path):
  with pytest.raises(DataNotFoundError, match="nothing.array_record"):
    EncodedSource(tmp_path / "nothing.array_record", num_classes=2, image_size=8)
  (tmp_path / "notes.array_record").write_text("hello")
  with pytest.raises(CorruptDataError, match="notes.array_record: not an array_record file"):
    EncodedSource(tmp_path / "notes.array_record", num_classes=2, image_size=8)


def test_a_label_outside_the_classes_is_refused(tmp_path):
  write_encoded_images(tmp_path / "l.array_record",
                       [encode(np.zeros((4, 4, 3), np.uint8), "PNG")], [5])
  source = EncodedSource(tmp_path / "l.array_record", num_classes=5, image_size=4)
  with pytest.raises(CorruptDataError, match=r"record 0: .*label 5 outside \[0, 5\)"):
    source.get_batch(np.array([0]))


def _tiny_jpeg_builder():
  """A TFDS builder of 20 JPEGs (20-39 x 30 px, labels i % 3), defined without being
  registered, so `tfds.data_source` reads the prepared files alone, as it does for a
  dataset prepared on another machine."""

  class TinyJpeg(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
          "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      rng = np.random.default_rng(5)
      for i in range(20):
        # Encoded bytes pass through TFDS's Image feature as they are, without TensorFlow.
        yield i, {"image": encode(photo(rng, 20 + i, 30)), "label": i % 3}

  return TinyJpeg


def test_tfds_jpeg_dataset_reads_as_a_worker_would(tmp_path):
  # Prepared as array_record without TensorFlow: a GeneratorBasedBuilder of encoded bytes.
  with tfds.core.registered.skip_registration():
    builder = _tiny_jpeg_builder()(data_dir=str(tmp_path), file_format="array_record")
  builder.download_and_prepare()
  # tfds.data_source decodes the JPEGs itself (with PIL, without TensorFlow). Preparing
  # shuffled the examples; an image's height tells which one a record holds.
  rng = np.random.default_rng(5)
  decoded = [np.asarray(Image.open(io.BytesIO(encode(photo(rng, 20 + i, 30)))))
             for i in range(20)]
  as_stored = TfdsSource("tiny_jpeg", "train", data_dir=str(tmp_path)).get_batch(np.array([0]))
  i = as_stored["image"].shape[1] - 20
  np.testing.assert_array_equal(as_stored["image"][0], decoded[i])
  assert as_stored["label"][0] == i % 3
  # A worker process receives the source pickled (with cloudpickle, by grain) and reopens
  # its files, here as there without the builder registered; the fixture `stream` shows
  # that the batches a worker makes from what it receives are the ones it returns.
  source = TfdsSource("tiny_jpeg", "train", data_dir=str(tmp_path), image_size=16)
  in_worker = pickle.loads(cloudpickle.dumps(source))
  assert in_worker is not source
  assert_same_batches(train_batches(in_worker, 8, seed=1, num_steps=4),
                      train_batches(source, 8, seed=1, num_steps=4), 4)
