"""A run initialised from another run's checkpoint (`config.model.pretrained`): ImageBind
binds its modalities to pretrained, frozen image and text encoders.

`config.model.pretrained` names a run's workdir (its `checkpoints/` folder) or a
checkpoint folder. Its latest checkpoint is read without its config, and two kinds of
arrays are taken from it into this run's initial params and BatchNorm statistics:

- the backbone: the one group of arrays with exactly the names, shapes and dtypes of
  `config.model.backbone`'s, wherever it sits (SimCLR's `backbone`, MAE's `encoder`,
  CLIP's `image_tower`), into this run's backbone;
- every other array at the same path with the same shape and dtype (a CLIP run's text
  tower, projections and logit scale into a binding run).

A checkpoint without the backbone (another backbone or width, not a jejax run) is
refused with a message naming it and what was looked for. The optimizer starts afresh.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jejax.methods.views import backbone_from_config
from jejax.train import optim
from jejax.train.checkpoint import (Checkpointer, CheckpointMismatchError,
                                    CheckpointNotFoundError)
from jejax.train.state import TrainState
from jejax.types import PyTree, path_name


def checkpoint_folder(path: str | os.PathLike) -> Path:
  """`path`/checkpoints when `path` is a run's workdir, else `path`, if it holds a
  checkpoint; FileNotFoundError naming `path` otherwise."""
  path = Path(path).absolute()
  folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
  if not folder.is_dir() or not any(p.name.isdigit() for p in folder.iterdir()):
    raise CheckpointNotFoundError(f"config.model.pretrained={str(path)!r}: no checkpoint "
                                  "there (a run's workdir or its checkpoints/ folder)")
  return folder


def read_latest(folder: Path) -> tuple[int, PyTree]:
  """(step, the saved state as a tree of host arrays) of the latest checkpoint in
  `folder`, read by its own metadata, so without knowing its model."""
  checkpointer = Checkpointer(folder, every_steps=1, keep=1)
  step = checkpointer.latest_step()
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  template = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          checkpointer.manager.item_metadata(step))
  return step, jax.device_get(checkpointer.restore_latest(template))


def _signature(tree: PyTree) -> dict[str, tuple[tuple[int, ...], str]]:
  return {path_name(path): (tuple(np.shape(leaf)), str(jnp.result_type(leaf)))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def find_group(tree: PyTree, template: PyTree) -> list[tuple[str, ...]]:
  """Key paths of the dicts inside `tree` whose leaves have exactly `template`'s names,
  shapes and dtypes."""
  wanted = _signature(template)
  found = []

  def visit(node, path):
    if not isinstance(node, dict):
      return
    if _signature(node) == wanted:
      found.append(path)
      return
    for key, child in node.items():
      visit(child, (*path, key))

  visit(tree, ())
  return found


def _get(tree: PyTree, path: tuple[str, ...]) -> PyTree:
  for key in path:
    tree = tree[key]
  return tree


def _replace(tree: PyTree, path: tuple[str, ...], value: PyTree) -> PyTree:
  if not path:
    return value
  return {**tree, path[0]: _replace(tree[path[0]], path[1:], value)}


def _same_paths(ours: PyTree, saved: PyTree) -> tuple[PyTree, set[str]]:
  """`ours` with every leaf that `saved` has at the same path with the same shape and
  dtype replaced by saved's, and the paths of those leaves."""
  theirs = {path_name(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(saved)}
  taken = set()

  def take(path, leaf):
    name = path_name(path)
    match = theirs.get(name)
    if match is None or _signature({"": match}) != _signature({"": leaf}):
      return leaf
    taken.add(name)
    return match

  return jax.tree_util.tree_map_with_path(take, ours), taken


def with_pretrained(state: TrainState, c: ml_collections.ConfigDict,
                    image_shape: tuple[int, int, int]) -> tuple[TrainState, list[str]]:
  """`state` (host arrays) with its backbone, and the arrays at the same paths, taken from
  the latest checkpoint of `config.model.pretrained` (module docstring); and the names of
  the top-level groups of params that were taken.

  Raises:
    FileNotFoundError: no checkpoint there.
    CheckpointMismatchError: the checkpoint holds no `config.model.backbone` (or
      several), or this run's model does not; the message names the checkpoint.
  """
  folder = checkpoint_folder(c.model.pretrained)
  step, saved = read_latest(folder)
  # The backbone's own variables (shapes only), to recognise it in both trees.
  backbone = backbone_from_config(c)
  images = jnp.zeros((2, *image_shape), jnp.float32)
  variables = jax.eval_shape(lambda: backbone.init(jax.random.key(0), images, train=True))
  template = variables["params"]
  where = f"config.model.pretrained: the checkpoint at {folder} (step {step})"
  ours = find_group(state.params, template)
  theirs = find_group(saved.get("params", {}), template)
  if len(ours) != 1:
    raise CheckpointMismatchError(f"{where}: this run's params hold {len(ours)} groups shaped "
                                  f"like config.model.backbone={c.model.backbone!r}, not one")
  if len(theirs) != 1:
    names = sorted(_signature(template).items())
    shown = ", ".join(f"{n} {s}" for n, (s, _) in names[:4])
    groups = sorted(saved.get("params", {}))
    raise CheckpointMismatchError(
        f"{where} holds {'several groups' if theirs else 'no group'} of arrays shaped like "
        f"config.model.backbone={c.model.backbone!r} ({len(names)} arrays: {shown}, ...); "
        f"its params have the groups {groups}. Pretrain with the same backbone and block "
        f"(config.model.{c.model.backbone}), or set config.model.pretrained=None")
  params, taken = _same_paths(state.params, saved["params"])
  batch_stats, _ = _same_paths(state.batch_stats, saved.get("batch_stats", {}))
  params = _replace(params, ours[0], _get(saved["params"], theirs[0]))
  if "batch_stats" in variables:
    batch_stats = _replace(batch_stats, ours[0], _get(saved["batch_stats"], theirs[0]))
  backbone = "/".join(ours[0])
  groups = sorted({name.split("/")[0] for name in taken} | {backbone or "(all params)"})
  taken |= {name for name in _signature(params)
            if not backbone or name.startswith(backbone + "/")}
  _check_frozen_taken(params, taken, c.optim.frozen, where)
  return state.replace(params=params, batch_stats=batch_stats), groups


def _check_frozen_taken(params: PyTree, taken: set[str], frozen: tuple[str, ...],
                        where: str) -> None:
  """Refuses a run whose frozen params (`optim.frozen`) did not all come from the
  checkpoint: a frozen array left at its random initialisation never trains, and the run
  would look like one that failed to learn (a text tower of another width, say)."""
  labels = optim.frozen_labels(params, frozen)
  missing = sorted(path_name(path) for path, label in
                   jax.tree_util.tree_leaves_with_path(labels)
                   if label == "frozen" and path_name(path) not in taken)
  if missing:
    shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
    raise CheckpointMismatchError(
        f"{where}: {len(missing)} frozen arrays (optim.frozen={list(frozen)}) are not in it "
        f"with this run's shapes: {shown}. Pretrain with the same towers and widths, or "
        "leave those groups out of optim.frozen")
