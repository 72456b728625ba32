"""Images per second of the host pipeline on JPEGs: decode + resize to 224 px, by workers.

  python experiments/bench_pipeline.py [--images 3000] [--workers 0,1,2,4,...]
      [--batch-size 128] [--images-per-run 4000] [--out bench_results] [--readme]

Writes a JPEG array_record data set to a temporary folder (`--images` synthetic images of
256-500 px a side, quality 90: smooth colour regions, edges, texture and noise, so the
files are photograph-sized), then reads it with `train_batches(EncodedSource(...,
image_size=224), workers=N)`: each image decoded with PIL, its shorter side scaled to 224
and the centre cropped, a batch stacked, for each N (0: in the calling thread; by
default 0 and 1, 2, 4, ... up to the CPU count). A run skips the first 2N + 1 batches
(process start-up, the workers' buffers filling) and times the next `--images-per-run`
images. Prints a markdown table (workers, images/s, speedup over 1 worker) and writes it
with the JSON of every run to `--out`; `--readme` also writes the table into README.md
between the pipeline markers. The figures depend on the cores free: the JSON records the
load average before and after each run.

Smoke run (seconds of work, a correctness check, not a measurement):
  python experiments/bench_pipeline.py --images 40 --batch-size 8 --images-per-run 16 \
      --workers 0,1 --out /tmp/bench_pipeline_smoke
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jejax.data import EncodedSource, train_batches, write_encoded_images
from zoo import REPO, replace_between_markers

README_MARKERS = ("<!-- pipeline:start -->", "<!-- pipeline:end -->")


def natural_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """(h, w, 3) uint8 with a photograph's mix of content: smooth colour regions (a 4 x 4
  grid of colours enlarged bicubically), sharp edges (filled ellipses), texture (noise
  at 1/8 scale, enlarged) and pixel noise."""
  canvas = Image.fromarray(rng.integers(0, 256, (4, 4, 3), np.uint8)).resize(
      (w, h), Image.Resampling.BICUBIC)
  draw = ImageDraw.Draw(canvas)
  for _ in range(rng.integers(3, 9)):
    x, y = rng.integers(0, w), rng.integers(0, h)
    draw.ellipse([x, y, x + rng.integers(10, w // 2), y + rng.integers(10, h // 2)],
                 fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
  texture = Image.fromarray(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), np.uint8))
  texture = np.asarray(texture.resize((w, h), Image.Resampling.BILINEAR), np.float32)
  pixels = (np.asarray(canvas, np.float32) + 0.15 * (texture - 128)
            + rng.normal(0, 4, (h, w, 3)))
  return np.clip(pixels, 0, 255).astype(np.uint8)


def write_jpeg_dataset(path: Path, num_images: int, quality: int = 90, seed: int = 0
                       ) -> dict:
  """Writes `num_images` JPEGs of 256-500 x 256-500 px, labels i % 1000, to the
  array_record file `path`; returns its size figures."""
  rng = np.random.default_rng(seed)

  def jpegs():
    for _ in range(num_images):
      h, w = rng.integers(256, 501, 2)
      buffer = io.BytesIO()
      Image.fromarray(natural_image(rng, int(h), int(w))).save(buffer, "JPEG",
                                                               quality=quality)
      yield buffer.getvalue()

  start = time.perf_counter()
  write_encoded_images(path, jpegs(), (i % 1000 for i in range(num_images)))
  return {"images": num_images, "quality": quality,
          "mean_kib_per_image": path.stat().st_size / num_images / 1024,
          "write_seconds": time.perf_counter() - start}


def decode_throughput(source: EncodedSource, batch_size: int, workers: int,
                      images_per_run: int) -> dict:
  """Images per second `train_batches(source, ..., workers=workers)` delivers in steady
  state, and the seconds to its first batch."""
  skip = 2 * workers + 1
  steps = max(1, images_per_run // batch_size)
  load_before = os.getloadavg()[0]
  start = time.perf_counter()
  batches = train_batches(source, batch_size, seed=0, num_steps=skip + steps,
                          workers=workers)
  next(batches)
  first_batch_seconds = time.perf_counter() - start
  for _ in range(skip - 1):
    next(batches)
  start = time.perf_counter()
  for batch in batches:
    assert batch["image"].shape == (batch_size, *source.image_shape)
  seconds = time.perf_counter() - start
  return {"workers": workers, "images_per_second": steps * batch_size / seconds,
          "timed_images": steps * batch_size, "first_batch_seconds": first_batch_seconds,
          "load_average_before": load_before, "load_average_after": os.getloadavg()[0]}


def default_workers() -> str:
  """'0,1,2,4,...': powers of two up to the CPU count (and the count itself)."""
  cpus = os.cpu_count() or 1
  counts = [0] + [2 ** k for k in range(cpus.bit_length()) if 2 ** k <= cpus]
  return ",".join(str(n) for n in sorted(set(counts + [cpus])))


def markdown_table(results: dict) -> str:
  """The runs as a markdown table, with a line saying what was measured where."""
  dataset, runs = results["dataset"], results["runs"]
  one = next((r["images_per_second"] for r in runs if r["workers"] == 1), None)
  lines = [
      f"{dataset['images']} JPEGs of 256-500 px ({dataset['mean_kib_per_image']:.0f} KiB "
      f"each on average), decode + resize to {results['image_size']} px, batch "
      f"{results['batch_size']}; {results['host']}, grain {results['grain']}, Pillow "
      f"{results['pillow']}; `{results['command']}`.",
      "",
      "| workers | images/s | speedup vs 1 worker | first batch s | load average |",
      "|---|---|---|---|---|"]
  for r in runs:
    speedup = f"{r['images_per_second'] / one:.2f}" if one else "-"
    name = "0 (in the calling thread)" if r["workers"] == 0 else str(r["workers"])
    lines.append(f"| {name} | {r['images_per_second']:.1f} | {speedup} | "
                 f"{r['first_batch_seconds']:.1f} | {r['load_average_before']:.1f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=3000)
  parser.add_argument("--workers", default=default_workers(),
                      help="comma-separated worker counts (default: %(default)s)")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--images-per-run", type=int, default=4000)
  parser.add_argument("--image-size", type=int, default=224)
  parser.add_argument("--out", default="bench_results")
  parser.add_argument("--readme", action="store_true",
                      help="write the table into README.md between the pipeline markers")
  args = parser.parse_args()
  start = time.perf_counter()

  with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "jpeg.array_record"
    print(f"writing {args.images} JPEGs to {path} ...", flush=True)
    dataset = write_jpeg_dataset(path, args.images)
    print(f"  {dataset['mean_kib_per_image']:.0f} KiB each on average, "
          f"{dataset['write_seconds']:.1f} s", flush=True)
    source = EncodedSource(path, num_classes=1000, image_size=args.image_size)
    runs = []
    for workers in (int(w) for w in args.workers.split(",")):
      print(f"workers={workers}: reading {args.images_per_run} images ...", flush=True)
      runs.append(decode_throughput(source, args.batch_size, workers, args.images_per_run))
      print(f"  {runs[-1]['images_per_second']:.1f} images/s (first batch after "
            f"{runs[-1]['first_batch_seconds']:.1f} s)", flush=True)
  results = {
      "command": "python experiments/bench_pipeline.py " + " ".join(sys.argv[1:]),
      "host": f"{platform.machine()}, {os.cpu_count()} CPUs",
      "grain": importlib.metadata.version("grain"),
      "pillow": importlib.metadata.version("pillow"), "dataset": dataset,
      "batch_size": args.batch_size, "image_size": args.image_size, "runs": runs}

  table = markdown_table(results)
  print("\n" + table + "\n", flush=True)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "bench_pipeline.json").write_text(json.dumps(results, indent=2) + "\n")
  (out / "bench_pipeline.md").write_text(table + "\n")
  print(f"results written to {out}/bench_pipeline.json and .md")
  if args.readme:
    readme = REPO / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), table, README_MARKERS))
    print(f"table written into {readme}")
  print(f"total {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
  main()
