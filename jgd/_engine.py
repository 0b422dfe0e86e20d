"""The training engine: one pure loop that ``fit`` compiles and ``sweep`` vmaps.

Everything here is a pure, traceable function of arrays: the static
``Config``, the ``Problem`` bundle (loss, optimizer, data, key, tol), the loop
``State``, one optimizer ``step``, one ``run_epoch`` over the mini-batches, the
``epoch_body`` that also records history and decides the status,
``advance_until`` (the one ``lax.while_loop``) and ``finish``. The entry points
(``jgd.training``, ``jgd.sweeps``) jit these; ``jgd._driver`` runs them chunk by
chunk. A sweep vmaps the very same functions, so each member behaves like a
solo run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jgd import _fused, _sharding
from jgd.data import permutation
from jgd.results import History, Status

__all__ = [
    "Config",
    "OptimizerFactory",
    "Outcome",
    "Problem",
    "Start",
    "State",
    "advance_until",
    "constrained",
    "evaluate",
    "final_losses",
    "finish",
    "initial_state",
    "n_rows",
    "n_values",
    "run_epoch",
    "state_axes",
    "step",
    "values_per_row",
    "with_optimizer",
]


class Config(NamedTuple):
    """Static settings: changing one of these compiles a new program."""

    epochs: int
    batch_size: int | None  # None: full batch
    record_every: int
    patience: int | None
    use_tol: bool
    shuffle: bool
    # A sweep vmaps the run: there each mini-batch step keeps the last finite
    # params with a select; a single run instead replays a diverged epoch (see
    # run_epoch), which under vmap would run every epoch for every member.
    batched: bool = False
    record_params: bool = False
    # With a mesh: the NamedSharding of data rows, applied inside the program
    # (XLA pads a short last shard itself, so no row is dropped or repeated).
    data_sharding: Any = None
    # Whether jgd's native CPU kernels may be used (jgd/_native): every array on
    # one device. XLA's partitioner cannot split a custom call over devices.
    native: bool = True
    has_aux: bool = False  # the loss returns (loss, aux dict of scalars)
    loss_takes_key: bool = False  # the loss is called loss_fn(params, batch, key)
    monitor: str = "val_loss"  # what patience watches: "val_loss" or "val_<metric>"
    maximize: bool = False  # mode="max": a larger monitored value is better


class Problem(NamedTuple):
    """What is trained: a pytree whose array leaves are traced data.

    In a sweep ``optimizer`` is None: each member builds its own from the
    factory and ``Problem._replace`` s it in.
    """

    loss_fn: Callable[..., Any]
    optimizer: Any
    data: Any
    val_data: Any
    key: Any
    tol: Any
    metrics: dict[str, Callable[..., Any]] | None = None


class OptimizerFactory(NamedTuple):
    """An optimizer built inside the program from traced hyperparameters.

    ``fit(..., optimizer=optax.adam, hyperparams={"learning_rate": 1e-3})``:
    the values are array leaves (data), so new values reuse the compiled
    program; the factory is static.
    """

    factory: Callable[..., Any]
    values: dict[str, jax.Array]

    def build(self) -> Any:
        return self.factory(**self.values)


def with_optimizer(problem: Problem) -> Problem:
    """The problem with its optimizer built (inside a program) when it is a factory."""
    if isinstance(problem.optimizer, OptimizerFactory):
        return problem._replace(optimizer=problem.optimizer.build())
    return problem


def constrained(problem: Problem, config: Config) -> Problem:
    """The problem as a program sees it: rows sharded (with a mesh), optimizer built."""
    data, val_data = _sharding.constrain((problem.data, problem.val_data), config.data_sharding)
    return with_optimizer(problem._replace(data=data, val_data=val_data))


class State(NamedTuple):
    params: Any
    opt_state: Any
    epoch: jax.Array  # the loop counter, shared by every member of a sweep
    first_epoch: jax.Array  # the counter's start: 0, or a warm start's last epoch
    epochs_run: jax.Array  # this run's own count: it stops when the run stops
    status: jax.Array
    diverged_at: jax.Array
    prev_loss: jax.Array
    best_val: jax.Array
    best_params: Any
    bad_epochs: jax.Array
    history: History


class Outcome(NamedTuple):
    params: Any
    opt_state: Any
    status: jax.Array
    epochs_run: jax.Array
    diverged_at: jax.Array  # 0 when the run did not diverge
    history: History


def n_rows(data: Any) -> int:
    """Rows of a batch: the shared leading axis of its leaves."""
    return jax.tree.leaves(data)[0].shape[0]


def values_per_row(data: Any) -> int:
    """Values in one row of a batch, over its leaves (what a step reads per row)."""
    return sum(math.prod(leaf.shape[1:]) for leaf in jax.tree.leaves(data))


def n_values(tree: Any) -> int:
    """Values in a pytree's arrays (e.g. the number of parameters)."""
    return sum(leaf.size for leaf in jax.tree.leaves(tree))


def state_axes(config: Config) -> State:
    """vmap axes of a sweep's state: the loop counter stays shared when it can."""
    shared = not (config.use_tol or config.patience is not None)
    fields = {name: 0 for name in State._fields}
    if shared:
        fields["epoch"] = fields["first_epoch"] = None
    return State(**fields)


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.array(True))


#: Stream of the loss's per-step keys, apart from the shuffle's fold_in(key, epoch).
_LOSS_STREAM = 0x6C6F7373


def step_key(problem: Problem, config: Config, epoch: jax.Array, index: Any) -> Any:
    """The loss's key for step ``index`` of ``epoch`` (None when the loss takes none).

    ``fold_in(fold_in(fold_in(key, stream), epoch), step)``: a function of the
    run's key and the step's position only, so chunks, bars and resumes give
    the same keys.
    """
    if not config.loss_takes_key:
        return None
    root = jax.random.fold_in(problem.key, _LOSS_STREAM)
    return jax.random.fold_in(jax.random.fold_in(root, epoch), index)


def loss_and_aux(problem: Problem, config: Config, params: Any, batch: Any, key: Any):
    """``(loss, aux)`` from the user's loss; ``key`` is None when jgd evaluates it."""
    if config.loss_takes_key:
        out = problem.loss_fn(params, batch, key)
    else:
        out = problem.loss_fn(params, batch)
    return out if config.has_aux else (out, {})


def evaluate(problem: Problem, config: Config, params: Any, batch: Any) -> jax.Array:
    """The loss at ``params`` on ``batch`` in evaluation mode (no key, aux dropped)."""
    return loss_and_aux(problem, config, params, batch, None)[0]


def _value_and_grad(problem: Problem, config: Config, params: Any, batch: Any, key: Any):
    if config.has_aux or config.loss_takes_key:
        (loss, aux), grads = jax.value_and_grad(
            lambda p: loss_and_aux(problem, config, p, batch, key), has_aux=True
        )(params)
        return loss, aux, grads
    loss, grads = _fused.value_and_grad(problem.loss_fn, native=config.native)(params, batch)
    return loss, {}, grads


class StepOut(NamedTuple):
    loss: jax.Array
    aux: dict[str, jax.Array]
    params: Any
    opt_state: Any
    finite: jax.Array


def step(
    problem: Problem, config: Config, params: Any, opt_state: Any, batch: Any, key: Any = None
) -> StepOut:
    """One update; ``finite`` says whether the loss and new params are finite.

    Optimizers taking optax's extra arguments (``GradientTransformationExtraArgs``:
    L-BFGS and its line searches, ``polyak_sgd``, ``reduce_on_plateau``) get
    the step's ``value``, ``grad`` and ``value_fn`` (the loss on this batch as
    a function of params, with this step's key).
    """
    loss, aux, grads = _value_and_grad(problem, config, params, batch, key)
    optimizer = problem.optimizer
    if isinstance(optimizer, optax.GradientTransformationExtraArgs):
        updates, new_opt_state = optimizer.update(
            grads,
            opt_state,
            params,
            value=loss,
            grad=grads,
            value_fn=lambda p: loss_and_aux(problem, config, p, batch, key)[0],
        )
    else:
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    finite = jnp.isfinite(loss) & _all_finite(new_params)
    return StepOut(loss, aux, new_params, new_opt_state, finite)


def _take(data: Any, rows: jax.Array) -> Any:
    return jax.tree.map(lambda a: jnp.take(a, rows, axis=0), data)


class EpochOut(NamedTuple):
    params: Any
    opt_state: Any
    loss: jax.Array  # the size-weighted mean of the steps' losses
    aux: dict[str, jax.Array]  # likewise for each aux entry
    finite: jax.Array


def _full_batch_epoch(problem, config, params, opt_state, epoch) -> EpochOut:
    out = step(
        problem, config, params, opt_state, problem.data, step_key(problem, config, epoch, 0)
    )
    return EpochOut(
        optax.tree.where(out.finite, out.params, params),
        optax.tree.where(out.finite, out.opt_state, opt_state),
        out.loss,
        out.aux,
        out.finite,
    )


def run_epoch(
    problem: Problem, config: Config, params: Any, opt_state: Any, epoch: jax.Array
) -> EpochOut:
    """One pass over the data (every leaf of the batch gathered by the same rows).

    After a non-finite step the remaining steps of the epoch are discarded, so
    the parameters are always the last finite ones.
    """
    if config.batch_size is None:
        return _full_batch_epoch(problem, config, params, opt_state, epoch)
    data, n = problem.data, n_rows(problem.data)

    def guarded_step(carry, rows_and_index):
        """A step that keeps the last finite params and state (one select per leaf)."""
        params, opt_state, ok = carry
        rows, index = rows_and_index
        key = step_key(problem, config, epoch, index)
        out = step(problem, config, params, opt_state, _take(data, rows), key)
        ok = ok & out.finite
        carry = (
            optax.tree.where(ok, out.params, params),
            optax.tree.where(ok, out.opt_state, opt_state),
            ok,
        )
        return carry, (out.loss, out.aux)

    def plain_step(carry, rows_and_index):
        rows, index = rows_and_index
        key = step_key(problem, config, epoch, index)
        out = step(problem, config, *carry, _take(data, rows), key)
        return (out.params, out.opt_state), (out.loss, out.aux, out.finite)

    def loss_checked_step(carry, rows_and_index):
        # Only the loss is checked per step (XLA drops the params check, a reduction
        # per leaf: ~1/3 of a small MLP step on CPU); the epoch's end params are
        # checked once, and the rare non-finite epoch is replayed step by step.
        carry, (loss, aux, _) = plain_step(carry, rows_and_index)
        return carry, (loss, aux, jnp.isfinite(loss))

    if config.shuffle:
        order = permutation(jax.random.fold_in(problem.key, epoch), n)
    else:
        order = jnp.arange(n)
    n_full, remainder = divmod(n, config.batch_size)
    carry = (params, opt_state, jnp.array(True))
    total = None
    if n_full:
        rows = order[: n_full * config.batch_size].reshape(n_full, config.batch_size)
        steps = (rows, jnp.arange(n_full))
        if config.batched:
            carry, values = lax.scan(guarded_step, carry, steps)
        else:
            start = (params, opt_state)
            carry, values = _unguarded_steps(plain_step, loss_checked_step, start, steps)
        total = jax.tree.map(lambda v: jnp.sum(v) * config.batch_size, values)
    if remainder:
        # The last short batch is a step of its own, with its true size.
        carry, last = guarded_step(carry, (order[n_full * config.batch_size :], n_full))
        weighted = jax.tree.map(lambda v: v * remainder, last)
        total = weighted if total is None else jax.tree.map(jnp.add, total, weighted)
    loss, aux = jax.tree.map(lambda t: t / n, total)
    return EpochOut(*carry[:2], loss, aux, carry[2])


def _unguarded_steps(plain_step, loss_checked_step, start, steps):
    """A single run's full mini-batches without a select or a params check per step.

    A select per leaf per step costs ~15 % of a small MLP step on CPU, a
    finiteness reduction per leaf more. Steps check only their loss; if a loss
    or the epoch's last params are not finite, the epoch is replayed from its
    start, checking every step fully (``plain_step``'s ``finite``), up to the
    last finite one: the same computations, so the same last finite params,
    and it only runs when the epoch diverged.
    """
    (end_params, end_state), (losses, aux, finite) = lax.scan(loss_checked_step, start, steps)
    all_finite = jnp.all(finite) & _all_finite(end_params)

    def replay():
        def going(carry):
            _, index, ok = carry
            return ok & (index < finite.shape[0])

        def one(carry):
            kept, index, _ = carry
            new, (_, _, ok) = plain_step(kept, jax.tree.map(lambda a: a[index], steps))
            return optax.tree.where(ok, new, kept), index + 1, ok

        return lax.while_loop(going, one, (start, jnp.asarray(0), jnp.asarray(True)))[0]

    kept = lax.cond(all_finite, lambda: (end_params, end_state), replay)
    return (*kept, all_finite), (losses, aux)


def _output_shapes(problem: Problem, config: Config, params: Any) -> tuple[Any, dict, dict]:
    """Shapes of the loss, its aux and the metrics, with clear errors for wrong ones."""
    key = None if not config.loss_takes_key else step_key(problem, config, 1, 0)
    try:
        out = jax.eval_shape(
            lambda p, b: (
                problem.loss_fn(p, b, key) if config.loss_takes_key else problem.loss_fn(p, b)
            ),
            params,
            problem.data,
        )
    except (TypeError, ValueError, IndexError, KeyError) as error:
        shapes = jax.tree.map(lambda a: tuple(a.shape), params)
        raise type(error)(
            f"loss_fn(params, batch) failed on the first batch: {error}\n"
            f"Check that params match the model and the data (params shapes: {shapes})."
        ) from error
    if config.has_aux != (isinstance(out, tuple) and len(out) == 2):
        raise ValueError(
            "has_aux=True: loss_fn must return (loss, aux) with aux a dict of scalars."
            if config.has_aux
            else "loss_fn returned a tuple; if it returns (loss, aux), pass has_aux=True."
        )
    loss, aux = out if config.has_aux else (out, {})
    _check_scalar(loss, "loss_fn")
    if not isinstance(aux, dict):
        raise ValueError(f"has_aux=True: the aux output must be a dict of scalars, got {aux}.")
    for name, value in aux.items():
        _check_scalar(value, f"aux[{name!r}]")
    metrics = {}
    for name, metric in (problem.metrics or {}).items():
        metrics[name] = jax.eval_shape(metric, params, problem.data)
        _check_scalar(metrics[name], f"metrics[{name!r}]", floating=False)
    return loss, aux, metrics


def _check_scalar(shape: Any, what: str, floating: bool = True) -> None:
    if getattr(shape, "shape", None) != ():
        raise ValueError(
            f"{what} must return a scalar, got shape {getattr(shape, 'shape', shape)}; "
            "average over the batch (e.g. jnp.mean)."
        )
    if floating and not jnp.issubdtype(shape.dtype, jnp.floating):
        raise TypeError(
            f"{what} returned dtype {shape.dtype}; return a floating-point value "
            "(e.g. jnp.mean(...) of floats)."
        )


class Start(NamedTuple):
    """Where a run starts: params, and for a warm start its optimizer state and epoch."""

    params: Any
    opt_state: Any = None  # None: optimizer.init(params)
    epoch: Any = 0  # epochs already run (a warm start continues the count)


def initial_state(problem: Problem, config: Config, start: Start) -> State:
    """The state before the run's first epoch (traceable, vmappable)."""
    params = start.params
    loss_shape, aux, metrics = _output_shapes(problem, config, params)
    loss_dtype = loss_shape.dtype
    n_records = -(-config.epochs // config.record_every)
    nan = jnp.full((n_records,), jnp.nan, loss_dtype)
    path = None
    if config.record_params:
        path = jax.tree.map(lambda p: jnp.full((n_records, *p.shape), jnp.nan, p.dtype), params)
    has_val = problem.val_data is not None
    return State(
        params=params,
        opt_state=problem.optimizer.init(params) if start.opt_state is None else start.opt_state,
        epoch=jnp.asarray(start.epoch, jnp.int32),
        first_epoch=jnp.asarray(start.epoch, jnp.int32),
        epochs_run=jnp.asarray(start.epoch, jnp.int32),
        status=jnp.asarray(Status.MAX_EPOCHS, jnp.int32),
        diverged_at=jnp.zeros((), jnp.int32),
        prev_loss=jnp.full((), jnp.inf, loss_dtype),
        best_val=jnp.full((), jnp.inf, loss_dtype),
        best_params=params if config.patience is not None else None,
        bad_epochs=jnp.zeros((), jnp.int32),
        history=History(
            epoch=jnp.zeros((n_records,), jnp.int32),
            loss=nan,
            val_loss=nan if has_val else None,
            params=path,
            metrics={name: nan for name in metrics} if metrics else None,
            val_metrics={name: nan for name in metrics} if metrics and has_val else None,
            aux={name: nan for name in aux} if config.has_aux else None,
        ),
    )


def _status(ok, invalid, early, converged) -> jax.Array:
    # Nested wheres (one elementwise kernel) rather than jnp.select (an argmax).
    return jnp.where(
        ~ok,
        Status.DIVERGED,
        jnp.where(
            invalid,
            Status.VALIDATION_NONFINITE,
            jnp.where(
                early,
                Status.EARLY_STOPPED,
                jnp.where(converged, Status.CONVERGED, Status.MAX_EPOCHS),
            ),
        ),
    ).astype(jnp.int32)


class _Evaluated(NamedTuple):
    val_loss: Any
    metrics: Any
    val_metrics: Any


def _evaluations(problem: Problem, config: Config, params: Any, dtype: Any) -> _Evaluated:
    """Validation loss and metrics after an epoch's updates (None where not asked for)."""
    val_data, metrics = problem.val_data, problem.metrics
    val_loss = None
    if val_data is not None:
        val_loss = evaluate(problem, config, params, val_data).astype(dtype)

    def on(batch: Any) -> dict[str, jax.Array]:
        return {name: fn(params, batch).astype(dtype) for name, fn in metrics.items()}

    train = on(problem.data) if metrics else None
    val = on(val_data) if metrics and val_data is not None else None
    return _Evaluated(val_loss, train, val)


def _early_stopping(config: Config, state: State, running, params, evaluated: _Evaluated):
    """(best_val, best_params, bad_epochs, early, invalid) after this epoch."""
    if config.patience is None:
        no = jnp.array(False)
        return state.best_val, state.best_params, state.bad_epochs, no, no
    if config.monitor == "val_loss":
        value = evaluated.val_loss
    else:
        value = evaluated.val_metrics[config.monitor.removeprefix("val_")]
    # best_val holds the monitored value with its sign set so lower is better.
    score = -value if config.maximize else value
    invalid = ~jnp.isfinite(score)
    improved = running & (score < state.best_val)
    best_val = jnp.where(improved, score, state.best_val)
    best_params = optax.tree.where(improved, params, state.best_params)
    bad_epochs = jnp.where(improved, 0, state.bad_epochs + 1)
    return best_val, best_params, bad_epochs, bad_epochs >= config.patience, invalid


def _record(state: State, config: Config, running, epoch, loss, aux, params, evaluated) -> History:
    """History with this epoch written into its slot (a stopped run writes back its slot).

    Each record slot holds the last epoch run in its block of record_every.
    """
    slot = (epoch - state.first_epoch - 1) // config.record_every

    def record(buffer: jax.Array, value: jax.Array) -> jax.Array:
        return buffer.at[slot].set(jnp.where(running, value, buffer[slot]))

    def records(buffers: Any, values: Any) -> Any:
        return None if buffers is None else jax.tree.map(record, buffers, values)

    old = state.history
    return History(
        epoch=record(old.epoch, epoch),
        loss=record(old.loss, loss),
        val_loss=records(old.val_loss, evaluated.val_loss),
        params=records(old.params, params),
        metrics=records(old.metrics, evaluated.metrics),
        val_metrics=records(old.val_metrics, evaluated.val_metrics),
        aux=records(old.aux, jax.tree.map(lambda v: v.astype(loss.dtype), aux)),
    )


def epoch_body(problem: Problem, config: Config, loss_dtype: Any) -> Callable[[State], State]:
    """One epoch as a function of the state (shared by every way of looping)."""

    def body(state: State) -> State:
        # A stopped run (diverged, converged, early-stopped) keeps its state:
        # masking here, rather than lax.cond around the epoch, stays cheap
        # under vmap, where a cond would select the whole state every epoch.
        # The loop counter ``epoch`` is not per-run, so under a sweep's vmap
        # the reshuffle and the history slot stay shared (unbatched).
        # A single run's loop ends as soon as the run stops, so its body only
        # ever runs a running run: a constant lets XLA drop the masking
        # (selects and history reads, ~6 of 22 kernels per epoch at N=1,000).
        running = state.status == Status.MAX_EPOCHS if config.batched else jnp.array(True)
        epoch = state.epoch + 1
        out = run_epoch(problem, config, state.params, state.opt_state, epoch)
        loss = out.loss.astype(loss_dtype)
        converged = jnp.array(False)
        if config.use_tol:
            change = jnp.abs(state.prev_loss - loss)
            converged = (epoch > 1) & (change <= problem.tol * jnp.abs(state.prev_loss))
        evaluated = _evaluations(problem, config, out.params, loss_dtype)
        best_val, best_params, bad_epochs, early, invalid = _early_stopping(
            config, state, running, out.params, evaluated
        )
        status = _status(out.finite, invalid, early, converged)
        return State(
            params=optax.tree.where(running, out.params, state.params),
            opt_state=optax.tree.where(running, out.opt_state, state.opt_state),
            epoch=epoch,
            first_epoch=state.first_epoch,
            epochs_run=jnp.where(running, epoch, state.epochs_run),
            status=jnp.where(running, status, state.status),
            diverged_at=jnp.where(running & ~out.finite, epoch, state.diverged_at),
            prev_loss=jnp.where(running, loss, state.prev_loss),
            best_val=best_val,
            best_params=best_params,
            bad_epochs=jnp.where(running, bad_epochs, state.bad_epochs),
            history=_record(state, config, running, epoch, loss, out.aux, out.params, evaluated),
        )

    return body


def advance_until(problem: Problem, config: Config, state: State, stop_at: jax.Array) -> State:
    """Run until the loop counter reaches ``stop_at`` or the run stops.

    Whole runs and chunked runs (progress bars, checkpoints) both loop here,
    so they compile the same loop and agree bit for bit (a ``lax.scan`` for the
    whole run compiled differently: XLA fused the epoch differently and a
    momentum buffer could differ in its last bit). ``stop_at`` may be traced:
    one program serves any chunk length.

    A single run leaves the loop once it stops (diverged, converged...). A
    sweep without tol/patience keeps one shared, unbatched loop counter (its
    members are masked once stopped, and the driver stops between chunks), as
    a per-member loop condition would make vmap select the whole state every
    epoch.
    """
    body = epoch_body(problem, config, state.prev_loss.dtype)
    stop_when_stopped = not config.batched or config.use_tol or config.patience is not None

    def cond(s: State) -> jax.Array:
        going = s.epoch < jnp.minimum(stop_at, s.first_epoch + config.epochs)
        return going & (s.status == Status.MAX_EPOCHS) if stop_when_stopped else going

    state = lax.while_loop(cond, body, state)
    return state if config.batched else _check_final_loss(problem, config, state)


def _check_final_loss(problem: Problem, config: Config, state: State) -> State:
    """A run that ended on its epoch count with finite params whose loss is NaN/inf diverged.

    Each epoch checks the loss at the params it started from, so the last
    update's overflow would otherwise go unseen (status MAX_EPOCHS, loss inf
    at the returned params). Runs once, after the last epoch.
    """
    ended = (state.epoch >= state.first_epoch + config.epochs) & (
        (state.status == Status.MAX_EPOCHS) | (state.status == Status.CONVERGED)
    )

    def check(s: State) -> State:
        bad = ~jnp.isfinite(evaluate(problem, config, s.params, problem.data))
        return s._replace(
            status=jnp.where(bad, Status.DIVERGED, s.status).astype(jnp.int32),
            diverged_at=jnp.where(bad, s.epoch, s.diverged_at),
        )

    return lax.cond(ended, check, lambda s: s, state)


def finish(state: State, config: Config) -> Outcome:
    """The run's outcome: early-stopped runs return their best-validation params."""
    params = state.params
    if config.patience is not None:
        params = optax.tree.where(state.status == Status.EARLY_STOPPED, state.best_params, params)
    return Outcome(
        params=params,
        opt_state=state.opt_state,
        status=state.status,
        epochs_run=state.epochs_run,
        diverged_at=state.diverged_at,
        history=state.history,
    )


def final_losses(problem: Problem, config: Config, params: Any) -> tuple[jax.Array, jax.Array]:
    """Training and validation loss at ``params`` (NaN without validation data)."""
    final_loss = evaluate(problem, config, params, problem.data)
    if problem.val_data is None:
        return final_loss, jnp.full_like(final_loss, jnp.nan)
    return final_loss, evaluate(problem, config, params, problem.val_data)
