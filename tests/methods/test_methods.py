"""Method state transforms, the EMA schedule, and the optimizer pieces they rely on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import parallel
from jejax.config import base_config
from jejax.data import to_global_array
from jejax.methods import BYOL, DINO, MoCoV2, Setup, SwAV, cosine_ema_momentum, ema
from jejax.methods.dino import teacher_temperature_at
from jejax.methods.moco import push_to_queue
from jejax.models.vit import vit_from_name
from jejax.train import build, optim
from jejax.train.state import TrainState
from jejax.train.step import init_state, make_step
from jejax.types import path_name

# The state transforms and losses below need no network.
NO_MODEL = {"model": None, "views": ()}


def test_cosine_ema_momentum_follows_the_byol_schedule():
  # tau_k = 1 - (1 - 0.996)(cos(pi k / K) + 1) / 2 with K = 100
  assert float(cosine_ema_momentum(0, 100, 0.996)) == pytest.approx(0.996)
  assert float(cosine_ema_momentum(50, 100, 0.996)) == pytest.approx(0.998)  # cos = 0
  assert float(cosine_ema_momentum(100, 100, 0.996)) == pytest.approx(1.0)
  assert float(cosine_ema_momentum(25, 100, 0.996)) == pytest.approx(
      1 - 0.004 * (np.cos(np.pi / 4) + 1) / 2)


def test_ema_is_the_convex_combination():
  target, online = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, -2.0])}
  # 0.9 * 1 + 0.1 * 3 = 1.2 ; 0.9 * 2 + 0.1 * (-2) = 1.6
  np.testing.assert_allclose(ema(target, online, 0.9)["w"], [1.2, 1.6], rtol=1e-6)


def _state(params, target_params=None, step=1):
  return TrainState(step=jnp.asarray(step), params=params, batch_stats={},
                    target_params=target_params if target_params is not None else {},
                    target_batch_stats={}, opt_state=(), method_state={})


def test_byol_update_moves_the_target_by_tau_of_the_previous_step():
  byol = BYOL(**NO_MODEL, total_steps=10, base_momentum=0.9)
  online, target = {"w": jnp.array([1.0])}, {"w": jnp.array([0.0])}
  # The state's step counts the update just made (k = 5), so tau is tau(4).
  tau = 1 - 0.1 * (np.cos(np.pi * 4 / 10) + 1) / 2
  new = byol.update(_state(online, target, step=5), None)
  np.testing.assert_allclose(new.target_params["w"], [(1 - tau) * 1.0], rtol=1e-6)
  np.testing.assert_array_equal(new.params["w"], online["w"])


def test_byol_target_starts_as_a_copy_in_its_own_buffers():
  params, batch_stats = {"w": jnp.arange(3.0)}, {"mean": jnp.ones(2)}
  target, target_batch_stats, _ = BYOL(**NO_MODEL, total_steps=1).init_target(
      params, batch_stats, jax.random.key(0))
  for copy, original in ((target["w"], params["w"]),
                         (target_batch_stats["mean"], batch_stats["mean"])):
    np.testing.assert_array_equal(copy, original)
    assert copy.unsafe_buffer_pointer() != original.unsafe_buffer_pointer()


def test_a_byol_step_runs_on_a_freshly_initialised_donated_state():
  c = base_config()
  c.method, c.augment.recipe = "byol", "byol"
  c.model.convnet.widths, c.model.projector_hidden, c.model.predictor_hidden = (4, 8), (16,), (16,)
  images = jnp.zeros((4, 8, 8, 1), jnp.uint8)
  method = build.build_method(c, Setup(4, 2, {"image": images}))
  optimizer, _ = build.build_optimizer(c, 4, 2)
  mesh = parallel.make_mesh(1)
  state = init_state(method, optimizer, jax.random.key(0), {"image": images})
  step = make_step(mesh, method=method, optimizer=optimizer)
  state, metrics = step(state, {"image": images}, jax.random.key(1))
  assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))


def test_swav_renormalises_prototypes_after_each_update():
  swav = SwAV(**NO_MODEL)
  params = {"prototypes": {"prototypes": jnp.array([[3.0, 4.0], [0.0, 2.0]])},
            "other": jnp.array([5.0])}
  new = swav.update(_state(params), None)
  np.testing.assert_allclose(new.params["prototypes"]["prototypes"],
                             [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)
  np.testing.assert_array_equal(new.params["other"], [5.0])


def test_swav_prototypes_get_no_gradient_while_frozen():
  swav = SwAV(**NO_MODEL, freeze_prototypes_steps=3)
  params = {"prototypes": {"prototypes": jnp.ones((2, 2))}, "other": jnp.ones(())}

  def loss(p, step):
    p = swav.prepare_params(p, step)
    return jnp.sum(p["prototypes"]["prototypes"] ** 2) * p["other"]

  frozen = jax.grad(loss)(params, jnp.asarray(2))
  free = jax.grad(loss)(params, jnp.asarray(3))
  np.testing.assert_array_equal(frozen["prototypes"]["prototypes"], 0.0)
  np.testing.assert_allclose(free["prototypes"]["prototypes"], 2.0)  # d/dw w^2 = 2w
  np.testing.assert_allclose(frozen["other"], 4.0)  # the rest trains all along


def test_warmup_cosine_schedule_values():
  schedule = optim.warmup_cosine(1.0, total_steps=110, warmup_steps=10)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(0.5)  # linear warmup
  assert float(schedule(10)) == pytest.approx(1.0)  # peak
  assert float(schedule(60)) == pytest.approx(0.5)  # half-way through the cosine
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-7)


def test_warmup_starts_at_its_fraction_of_the_peak():
  # I-JEPA's reference warms up from 2e-4 to 1e-3: start_fraction 0.2.
  schedule = optim.warmup_cosine(1e-3, total_steps=110, warmup_steps=10, start_fraction=0.2)
  assert float(schedule(0)) == pytest.approx(2e-4)
  assert float(schedule(5)) == pytest.approx(6e-4)  # linear: half-way from 2e-4 to 1e-3
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-10)


def test_decay_mask_excludes_biases_and_norm_parameters():
  params = {"Conv_0": {"kernel": jnp.ones((3, 3, 1, 4))}, "Dense_0": {"bias": jnp.ones(4)},
            "BatchNorm_0": {"scale": jnp.ones(4), "bias": jnp.ones(4)}}
  mask = optim.decay_mask(params)
  assert mask == {"Conv_0": {"kernel": True}, "Dense_0": {"bias": False},
                  "BatchNorm_0": {"scale": False, "bias": False}}



def test_decay_mask_excludes_attention_biases_of_two_dimensions():
  """Flax's attention stores the query/key/value biases as (heads, head_dim)."""
  model = vit_from_name("micro/4")
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
  mask = optim.decay_mask(params)
  decayed = {path_name(p): m for p, m in jax.tree_util.tree_leaves_with_path(mask)}
  two_dim_biases = [n for n, leaf in
                    ((path_name(p), l) for p, l in jax.tree_util.tree_leaves_with_path(params))
                    if n.endswith("bias") and leaf.ndim == 2]
  assert two_dim_biases  # the case exists: query, key and value of every block
  assert not any(decayed[n] for n in two_dim_biases)
  assert decayed["encoder/block_0/MultiHeadDotProductAttention_0/query/kernel"]


def test_unknown_optimizer_is_refused():
  with pytest.raises(ValueError, match="unknown optimizer"):
    optim.make_optimizer("adagrad", optim.warmup_cosine(1.0, 10, 1), weight_decay=0.0)


def test_push_to_queue_is_a_ring_buffer_of_whole_batches():
  queue = jnp.zeros((6, 1))
  position = jnp.asarray(0)
  for batch in ([[1.0], [2.0]], [[3.0], [4.0]], [[5.0], [6.0]], [[7.0], [8.0]]):
    queue, position = push_to_queue(queue, position, jnp.asarray(batch))
  # After 4 pushes of 2 into 6 rows, the 4th batch overwrote the oldest (the 1st).
  np.testing.assert_array_equal(queue[:, 0], [7.0, 8.0, 3.0, 4.0, 5.0, 6.0])
  assert int(position) == 2
  with pytest.raises(ValueError, match="divide the queue size"):
    push_to_queue(queue, position, jnp.ones((4, 1)))


def test_moco_v2_update_pushes_unit_keys_and_moves_the_key_encoder():
  moco = MoCoV2(**NO_MODEL, embed_dim=2, queue_size=4, momentum=0.9)
  params = {"w": jnp.array([1.0])}
  target, _, method_state = moco.init_target(params, {}, jax.random.key(0))
  np.testing.assert_allclose(jnp.linalg.norm(method_state["queue"], axis=1), 1.0, rtol=1e-6)
  state = _state({"w": jnp.array([2.0])}, target).replace(method_state=method_state)
  keys = jnp.array([[0.6, 0.8], [0.0, 1.0]])
  new = moco.update(state, keys)
  np.testing.assert_allclose(new.method_state["queue"][:2], keys)
  np.testing.assert_array_equal(new.method_state["queue"][2:], method_state["queue"][2:])
  assert int(new.method_state["queue_position"]) == 2
  np.testing.assert_allclose(new.target_params["w"], [0.9 * 1.0 + 0.1 * 2.0], rtol=1e-6)


def test_moco_v2_loss_contrasts_against_the_queue_before_the_push():
  moco = MoCoV2(**NO_MODEL, embed_dim=2, queue_size=2, temperature=1.0)
  queue = jnp.array([[0.0, 1.0], [0.0, 1.0]])
  state = _state({}).replace(method_state={"queue": queue, "queue_position": jnp.asarray(0)})
  online = [{"embedding": jnp.array([[2.0, 0.0]])}, {"embedding": jnp.zeros((1, 2))}]
  target = [{"embedding": jnp.zeros((1, 2))}, {"embedding": jnp.array([[3.0, 0.0]])}]
  loss, _, keys = moco.loss(online, target, None, state)
  # query e0, key e0 (logit 1), two queued negatives e1 (logit 0): log(1 + 2/e).
  assert float(loss) == pytest.approx(np.log(1 + 2 / np.e), rel=1e-6)
  np.testing.assert_allclose(keys, [[1.0, 0.0]])  # the normalised key of view 2


def test_dino_teacher_temperature_warms_up_linearly():
  assert float(teacher_temperature_at(0, 10, 0.04, 0.07)) == pytest.approx(0.04)
  assert float(teacher_temperature_at(5, 10, 0.04, 0.07)) == pytest.approx(0.055)
  assert float(teacher_temperature_at(10, 10, 0.04, 0.07)) == pytest.approx(0.07)
  assert float(teacher_temperature_at(50, 10, 0.04, 0.07)) == pytest.approx(0.07)
  assert float(teacher_temperature_at(3, 0, 0.04, 0.07)) == pytest.approx(0.07)  # no warmup


def test_dino_center_is_an_ema_of_the_mean_teacher_score():
  dino = DINO(**NO_MODEL, total_steps=10, center_momentum=0.9)
  prototypes = {"prototypes": jnp.array([[1.0, 0.0], [0.0, 1.0]])}
  target, _, method_state = dino.init_target({"prototypes": prototypes}, {},
                                             jax.random.key(0))
  np.testing.assert_array_equal(method_state["center"], [0.0, 0.0])
  state = _state({"prototypes": prototypes}, target).replace(method_state=method_state)
  teacher = [{"scores": jnp.array([[1.0, 0.0], [0.0, 0.0]])},
             {"scores": jnp.array([[1.0, 2.0], [0.0, 2.0]])}]
  student = teacher + [{"scores": jnp.zeros((2, 2))}]
  _, metrics, batch_center = dino.loss(student, teacher, None, state)
  np.testing.assert_allclose(batch_center, [0.5, 1.0])  # mean over both crops' 4 rows
  new = dino.update(state.replace(step=jnp.asarray(1)), batch_center)
  np.testing.assert_allclose(new.method_state["center"], [0.05, 0.1], rtol=1e-6)
  assert float(metrics["teacher_temperature"]) == pytest.approx(0.04)


def test_dino_teacher_prototypes_stay_on_the_sphere():
  dino = DINO(**NO_MODEL, total_steps=10, base_momentum=0.5)
  online = {"prototypes": {"prototypes": jnp.array([[1.0, 0.0]])}}
  teacher = {"prototypes": {"prototypes": jnp.array([[0.0, 1.0]])}}
  state = _state(online, teacher, step=1).replace(method_state={"center": jnp.zeros(1)})
  new = dino.update(state, jnp.zeros(1))
  # The EMA of e0 and e1 at momentum 0.5 is (0.5, 0.5), put back on the sphere.
  np.testing.assert_allclose(new.target_params["prototypes"]["prototypes"],
                             [[2 ** -0.5, 2 ** -0.5]], rtol=1e-6)


def test_multi_crop_step_compiles_once_per_layout(tiny_config):
  c = tiny_config("dino", batch_size=8)
  example = {"image": np.zeros((2, 16, 16, 1), np.uint8)}
  method = build.build_method(c, Setup(4, 2, example))
  assert [v.out_size for v in method.views] == [16, 16, 8, 8, 8, 8]
  optimizer, _ = build.build_optimizer(c, 4, 2)
  mesh = parallel.make_mesh(2)
  state = parallel.replicate(init_state(method, optimizer, jax.random.key(0), example), mesh)
  step = make_step(mesh, method=method, optimizer=optimizer)
  rng = np.random.default_rng(0)
  for i in range(3):
    images = rng.integers(0, 256, (8, 16, 16, 1), np.uint8)
    batch = to_global_array({"image": images}, parallel.data_sharding(mesh))
    state, metrics = step(state, batch, jax.random.key(i))
    assert np.isfinite(float(metrics["loss"]))
  assert step._cache_size() == 1  # one trace and compile for the 2 + 4 crop layout


def test_a_view_method_trains_a_vit_backbone(tiny_config):
  """Backbones are interchangeable: SimCLR on the registered ViT, one step."""
  c = tiny_config("simclr", batch_size=8)
  c.model.backbone = "vit"
  for op in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    c.augment[op] = 0.0  # crops and flips only: a fast compile
  images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1), np.uint8)
  method = build.build_method(c, Setup(4, 2, {"image": images[:2]}))
  optimizer, _ = build.build_optimizer(c, 4, 2)
  mesh = parallel.make_mesh(1)
  state = init_state(method, optimizer, jax.random.key(0), {"image": images[:2]})
  before = state.params["backbone"]["patch_embed"]["kernel"].copy()
  state, metrics = make_step(mesh, method=method, optimizer=optimizer)(
      state, {"image": jnp.asarray(images)}, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"]))
  assert np.abs(np.asarray(state.params["backbone"]["patch_embed"]["kernel"]) - before).max() > 0
  features = method.features({"params": state.params, "batch_stats": state.batch_stats},
                             jnp.asarray(images, jnp.float32) / 255)
  assert features.shape == (8, 48)  # ViT-nano's width
