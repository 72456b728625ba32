"""The gradient-descent reference the closed forms of jejax.theory are tested against."""

import jax
import optax


def minimise(loss, params, steps):
  """L-BFGS (optax, zoom line search) on a deterministic loss, jitted as one scan."""
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    return (optax.apply_updates(params, updates), state), None

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), length=steps)
  return params
