"""Trains CLIP, SigLIP, ImageBind-style binding and its speech-text control on the offline
Fashion-MNIST captions and speech, evaluates zero-shot classification and retrieval on
the test split (held-out voices), and writes the tables into README.md.

  python experiments/multimodal.py                       # runs/multimodal/<run>
  python experiments/multimodal.py --workdir /tmp/mm --no-readme

The runs, one process each, one after the other (every run's `jejax.main` with its
`experiments/configs/<method>.py`):

  clip         CLIP on (image, caption) pairs
  siglip       SigLIP on the same
  imagebind    speech bound to clip's frozen image tower: never a speech-text pair
  speech_text  the control: each clip bound to clip's frozen text embedding of its caption
  siglip_long  SigLIP for 4 epochs instead of 2 (it leaves its first plateau later)

A run with a summary.json is not trained again and one with a multimodal.json is not
evaluated again; an interrupted run resumes from its checkpoint, so the command can be
repeated until the tables are complete (`--runs` picks some). They go to
<workdir>/results.md and .json and, unless --no-readme, into README.md between the
multimodal markers, with the commit each run trained at (from its train.log).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from zoo import REPO, replace_between_markers, run_job

README_MARKERS = ("<!-- multimodal:start -->", "<!-- multimodal:end -->")
KS = (1, 5, 10)


def runs(workdir: Path) -> dict[str, tuple[str, list[str]]]:
  """run -> (config, extra flags)."""
  clip = str(workdir / "clip")
  return {
      "clip": ("clip", []),
      "siglip": ("siglip", []),
      "imagebind": ("imagebind", [f"--config.model.pretrained={clip}"]),
      "speech_text": ("imagebind", [f"--config.model.pretrained={clip}",
                                    "--config.imagebind.audio_anchor=text"]),
      "siglip_long": ("siglip", ["--config.epochs=4"]),
  }


def train(name: str, config: str, flags: list[str], workdir: Path) -> dict:
  """The run's summary.json and the commits it trained at, after training it in a
  process of its own unless done (`zoo.run_job`; its output goes to train.log)."""
  return run_job(name, REPO / "experiments" / "configs" / f"{config}.py", workdir, flags,
                 log_name="train.log")


def evaluate(name: str, workdir: Path) -> dict:
  """Zero-shot and retrieval on the test split (`jejax.embed_multimodal.evaluate`), in a
  process of its own, cached in multimodal.json."""
  path = workdir / "multimodal.json"
  if not path.exists():
    print(f"[{time.strftime('%H:%M:%S')}] {name}: zero-shot and retrieval", flush=True)
    code = ("import json, sys; from jejax.embed_multimodal import load_run, evaluate; "
            "from jejax.data.paired import BUILDS; run, embedder, _ = load_run(sys.argv[1]); "
            "print(json.dumps(evaluate(embedder, BUILDS[run.config.data.multimodal_build])))")
    # stderr passes through: a failed evaluation shows why.
    out = subprocess.run([sys.executable, "-c", code, str(workdir)], check=True, cwd=REPO,
                         stdout=subprocess.PIPE, text=True).stdout
    path.write_text(json.dumps(json.loads(out.strip().splitlines()[-1]), indent=2) + "\n")
  return json.loads(path.read_text())


def _cells(results: dict, names: list[str]) -> list[str]:
  return [f"{results[n]:.4f}" for n in names]


def tables(results: dict[str, dict], summaries: dict[str, dict]) -> str:
  """The two markdown tables: image-text (CLIP, SigLIP) and speech (binding, control)."""
  image_text = ["image_zero_shot"] + [f"{d}_r{k}" for d in ("image_to_text", "text_to_image")
                                      for k in KS]
  head = ("| run | zero-shot accuracy | image->text R@1 | R@5 | R@10 | text->image R@1 | R@5 "
          "| R@10 | linear probe | kNN |\n|---|" + "---|" * 9)
  names = {"clip": "CLIP", "siglip": "SigLIP", "siglip_long": "SigLIP, 4 epochs"}
  names = {name: label for name, label in names.items() if name in results}
  rows = [f"| {label} | " + " | ".join(_cells(results[name], image_text)) +
          f" | {summaries[name]['linear_probe_accuracy']:.4f} | "
          f"{summaries[name]['knn_accuracy']:.4f} |" for name, label in names.items()]
  random_init = summaries["clip"]["random_init_linear_probe_accuracy"]
  rows.append("| random-init image tower | | | | | | | | " f"{random_init:.4f} | |")
  chance = [results["clip"]["chance_zero_shot"]] + [
      results["clip"][f"chance_{n}"] for n in image_text[1:]]
  class_chance = results["clip"]["chance_zero_shot"]  # 1 / classes, as kNN's and probes'
  rows.append("| chance | " + " | ".join(f"{v:.4f}" for v in chance) +
              f" | {class_chance:.4f} | {class_chance:.4f} |")
  speech = ["speech_zero_shot"] + [f"{d}_r{k}" for d in ("speech_to_text", "text_to_speech",
                                                          "speech_to_image") for k in KS]
  head2 = ("| run | speech zero-shot accuracy | speech->text R@1 | R@5 | R@10 | "
           "text->speech R@1 | R@5 | R@10 | speech->image R@1 | R@5 | R@10 | "
           "image zero-shot |\n|---|" + "---|" * 11)
  labels = {"imagebind": "binding (no speech-text pair)",
            "speech_text": "control (speech-text pairs)"}
  labels = {name: label for name, label in labels.items() if name in results}
  if "imagebind" not in results:
    return "\n".join([head, *rows])
  rows2 = [f"| {labels[name]} | " + " | ".join(_cells(results[name], speech)) +
           f" | {results[name]['image_zero_shot']:.4f} |" for name in labels]
  chance2 = [results["imagebind"]["chance_zero_shot"]] + [
      results["imagebind"][f"chance_{n}"] for n in speech[1:]]
  rows2.append("| chance | " + " | ".join(f"{v:.4f}" for v in chance2) +
               f" | {results['imagebind']['chance_zero_shot']:.4f} |")
  return "\n".join([head, *rows, "", head2, *rows2])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "multimodal")
  parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
  parser.add_argument("--runs", default=",".join(runs(Path("."))),
                      help="comma-separated; clip, siglip, imagebind and speech_text are "
                           "needed for the tables")
  args = parser.parse_args()
  start = time.perf_counter()
  summaries, results = {}, {}
  wanted = args.runs.split(",")
  for name, (config, flags) in runs(args.workdir.absolute()).items():
    if name in wanted:
      summaries[name] = train(name, config, flags, args.workdir / name)
      results[name] = evaluate(name, args.workdir / name)
  total = time.perf_counter() - start
  each = ", ".join(f"{n} {summaries[n]['wall_seconds']:.0f} s at "
                   f"{'/'.join(summaries[n]['commits']) or 'an unrecorded commit'}"
                   for n in summaries)
  block = (f"{tables(results, summaries)}\n\nProduced by `python experiments/multimodal.py` "
           f"(training wall time and commit of each run: {each}).")
  (args.workdir / "results.md").write_text(block + "\n")
  (args.workdir / "results.json").write_text(
      json.dumps({"results": results, "summaries": summaries}, indent=2) + "\n")
  print(block)
  print(f"total {total:.0f} s")
  if not args.no_readme:
    readme = REPO / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), block, README_MARKERS))
    print(f"tables written into {readme}")


if __name__ == "__main__":
  main()
