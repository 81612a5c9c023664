"""Data-parallel loss, gradient and Hessian-vector products: the evaluation set split across local worker processes
or the workers of a Dask cluster.

Each worker receives its shard of the evaluation set and the model once, as a :class:`ModelRecipe` (a picklable
factory, such as ``functools.partial(build_model, config, shape, classes, seed=0)``, and the state dict as numpy
arrays: no pickled module), and keeps an :class:`~qlandscape.core.objective.Objective` over its shard. Each call
broadcasts θ (and v) and gathers one partial result per shard; the partial means are weighted by their shard's
share of the set and summed in float64 in shard order, so the result does not depend on which worker finishes
first and equals the single-process value to round-off (about 1e-15 relative).

:meth:`DataParallelObjective.hessian_operator` is a :class:`~qlandscape.core.operators.LinearOperator`, so Lanczos,
Hutchinson and stochastic Lanczos quadrature run on it unchanged. Dask is the optional extra ``qlandscape[dask]``,
imported here only when a Dask cluster is asked for.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from qlandscape.core.errors import ConfigError, check_positive_int
from qlandscape.core.memory import memory_budget
from qlandscape.core.objective import Objective
from qlandscape.core.operators import LinearOperator

__all__ = ["ModelRecipe", "ShardWorker", "DataParallelObjective", "shard_bounds"]

# torch.func's transforms keep their levels per process, not per thread: shard workers that share a process (Dask
# workers with threads, a LocalCluster(processes=False)) take turns.
_TRANSFORMS = threading.Lock()


@dataclass(frozen=True)
class ModelRecipe:
    """How a worker builds the model: ``factory()`` (picklable: a module-level function or a ``functools.partial``
    of one) builds the architecture, converted to float64, and ``state`` (numpy arrays) sets its parameters and
    buffers."""

    factory: Callable[[], nn.Module]
    state: dict[str, np.ndarray]

    @classmethod
    def of(cls, model: nn.Module, factory: Callable[[], nn.Module]) -> ModelRecipe:
        """The recipe of ``model``: its state dict in float64 (float tensors) as numpy copies, and ``factory``."""
        state = {}
        for name, value in model.state_dict().items():
            tensor = value.detach().cpu()
            state[name] = (tensor.double() if tensor.is_floating_point() else tensor).numpy().copy()
        return cls(factory, state)

    def build(self) -> nn.Module:
        """The model: built by the factory, in float64, with the recipe's state loaded (strictly: every name)."""
        model = self.factory().to(torch.float64)
        model.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in self.state.items()})
        return model


class ShardWorker:
    """One shard of the evaluation set and the :class:`~qlandscape.core.objective.Objective` over it, kept by a
    worker; its methods return the shard's mean loss, gradient and HVP as float64 numpy arrays."""

    def __init__(self, recipe: ModelRecipe, x: np.ndarray, y: np.ndarray, options: dict[str, Any]) -> None:
        with _TRANSFORMS:  # the Objective measures its footprint on its first chunked call, or here
            self.objective = Objective(
                recipe.build(), torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y)), **options
            )

    def theta0(self) -> np.ndarray:
        """The model's parameters as one flat vector."""
        return self.objective.theta0.numpy().copy()

    def loss(self, theta: np.ndarray) -> np.ndarray:
        """The shard's mean loss at θ."""
        with _TRANSFORMS:
            return np.asarray(float(self.objective.loss(torch.from_numpy(theta))), dtype=np.float64)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        """The gradient of the shard's mean loss at θ."""
        with _TRANSFORMS:
            return self.objective.grad(torch.from_numpy(theta)).numpy()

    def value_and_grad(self, theta: np.ndarray) -> np.ndarray:
        """The shard's mean loss followed by its gradient, in one vector."""
        with _TRANSFORMS:
            value, grad = self.objective.value_and_grad(torch.from_numpy(theta))
        return np.concatenate([[float(value)], grad.detach().numpy()])

    def hvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """H(θ) v of the shard's mean loss."""
        with _TRANSFORMS:
            return self.objective.hvp(torch.from_numpy(theta), torch.from_numpy(v)).numpy()


class _Pool(Protocol):
    def call(self, method: str, args: tuple[np.ndarray, ...]) -> list[np.ndarray]: ...

    def close(self) -> None: ...


def _serve(conn: multiprocessing.connection.Connection, args: tuple[Any, ...], threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        worker = ShardWorker(*args)
    except Exception as exc:  # the driver raises it, with the worker's message
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        message = conn.recv()
        if message is None:
            return
        method, call_args = message
        try:
            conn.send(("ok", getattr(worker, method)(*call_args)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _LocalPool:
    """Spawned worker processes, one per shard, each holding its shard; messages over pipes."""

    def __init__(self, shards: Sequence[tuple[Any, ...]], threads: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[multiprocessing.connection.Connection] = []
        self.procs: list[Any] = []
        for args in shards:
            parent, child = context.Pipe()
            proc = context.Process(target=_serve, args=(child, args, threads), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self._gather("ready")

    def _gather(self, expected: str) -> list[Any]:
        out = []
        for i, conn in enumerate(self.conns):
            try:
                status, value = conn.recv()
            except EOFError:
                self.close()
                raise RuntimeError(f"data-parallel worker {i} exited unexpectedly") from None
            if status == "error":
                self.close()
                raise RuntimeError(f"data-parallel worker {i}: {value}")
            if status != expected:
                raise RuntimeError(f"data-parallel worker {i} answered {status!r}, expected {expected!r}")
            out.append(value)
        return out

    def call(self, method: str, args: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        for conn in self.conns:
            conn.send((method, args))
        return self._gather("ok")

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        self.conns, self.procs = [], []


class _DaskPool:
    """Dask actors, one per shard, spread over the cluster's workers; each keeps its shard."""

    def __init__(self, shards: Sequence[tuple[Any, ...]], dask: Any) -> None:
        try:  # Dask is an optional dependency (the extra qlandscape[dask]): imported only when it is asked for
            from dask.distributed import Client  # noqa: PLC0415 (optional dependency)
        except ImportError:
            raise ConfigError(
                "dask", dask, "needs the optional extra: pip install 'qlandscape[dask]' (dask.distributed is missing)"
            ) from None
        if isinstance(dask, Client):
            self.client, self.owned = dask, False
        else:
            try:
                self.client, self.owned = Client(dask, timeout="20s"), True
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError("dask", dask, f"could not connect to a Dask scheduler there ({exc})") from exc
        addresses = sorted(self.client.scheduler_info()["workers"])
        if not addresses:
            raise ConfigError("dask", dask, "the cluster has no workers")
        futures = [
            self.client.submit(ShardWorker, *args, actor=True, workers=[addresses[i % len(addresses)]], pure=False)
            for i, args in enumerate(shards)
        ]
        self.actors = [future.result() for future in futures]

    def call(self, method: str, args: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        pending = [getattr(actor, method)(*args) for actor in self.actors]
        return [np.asarray(p.result()) for p in pending]

    def close(self) -> None:
        self.actors = []
        if self.owned:
            self.client.close()


def shard_bounds(n_samples: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges splitting ``n_samples`` into ``shards`` parts (sizes differ by at most 1)."""
    edges = np.linspace(0, n_samples, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


class DataParallelObjective:
    """The mean loss of a model over ``(x, y)``, its gradient and HVPs, computed by workers that each keep a shard.

    Args:
        recipe: how a worker builds the model (:class:`ModelRecipe`).
        x, y: the evaluation set; split into ``shards`` contiguous parts (default: one per worker).
        loss: a built-in loss name or a picklable callable, as for the Objective.
        workers: local worker processes (spawned, ``threads`` torch threads each); ignored with ``dask``.
        dask: a Dask scheduler address or a ``distributed.Client``: one actor per shard on its workers.
        chunk_size, train_mode, memory_budget: as for the Objective, applied on every worker. The default budget
            of a local worker is the default budget of this machine divided among the workers.
    """

    def __init__(
        self,
        recipe: ModelRecipe,
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
        loss: str | Callable[..., Any] = "cross_entropy",
        *,
        workers: int = 2,
        dask: Any = None,
        shards: int | None = None,
        threads: int = 1,
        chunk_size: int | None = None,
        train_mode: bool = False,
        memory_budget: int | str | None = None,
    ) -> None:
        x_np = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
        y_np = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
        if x_np.shape[0] == 0 or y_np.shape[0] != x_np.shape[0]:
            raise ConfigError("evaluation set", (x_np.shape, y_np.shape), "expected as many labels as inputs, >= 1")
        workers = check_positive_int("workers", workers)
        threads = check_positive_int("threads", threads)
        n_shards = check_positive_int("shards", shards if shards is not None else workers)
        self.n_samples = int(x_np.shape[0])
        self.bounds = shard_bounds(self.n_samples, min(n_shards, self.n_samples))
        self.weights = [(stop - start) / self.n_samples for start, stop in self.bounds]
        budget = memory_budget
        if budget is None and dask is None:
            total = _default_budget()
            budget = None if total is None else max(1, total // len(self.bounds))
        options: dict[str, Any] = {
            "loss": loss,
            "chunk_size": chunk_size,
            "train_mode": train_mode,
            "memory_budget": budget,
        }
        shard_args = [(recipe, x_np[a:b], y_np[a:b], options) for a, b in self.bounds]
        self.where = f"Dask at {dask}" if dask is not None else f"{len(self.bounds)} local process(es)"
        self._pool: _Pool = _DaskPool(shard_args, dask) if dask is not None else _LocalPool(shard_args, threads)
        self.theta0 = np.asarray(self._pool.call("theta0", ())[0], dtype=np.float64)
        self.n_params = int(self.theta0.size)

    @classmethod
    def from_objective(
        cls, objective: Objective, factory: Callable[[], nn.Module], **kwargs: Any
    ) -> DataParallelObjective:
        """Workers for ``objective``'s model (its float64 copy, through ``factory``), evaluation set and loss; the
        keyword arguments as for the class (chunk size, train mode and budget default to the objective's)."""
        kwargs.setdefault("chunk_size", objective.chunk_size)
        kwargs.setdefault("train_mode", objective.model.training)
        kwargs.setdefault("memory_budget", objective.memory_budget)
        y = objective.y
        return cls(ModelRecipe.of(objective.model, factory), objective.x, y, objective.loss_fn, **kwargs)

    def __repr__(self) -> str:
        return f"DataParallelObjective(n_params={self.n_params}, n_samples={self.n_samples}, on {self.where})"

    def _theta(self, theta: np.ndarray | torch.Tensor | None) -> np.ndarray:
        if theta is None:
            return self.theta0.copy()
        t = np.asarray(theta.detach().cpu() if isinstance(theta, torch.Tensor) else theta, dtype=np.float64)
        if t.shape != (self.n_params,):
            raise ConfigError("theta", t.shape, f"expected a flat vector of shape ({self.n_params},)")
        if not np.isfinite(t).all():
            raise ConfigError("theta", "non-finite entries", "parameters must be finite")
        return np.ascontiguousarray(t)

    def _reduce(self, method: str, args: tuple[np.ndarray, ...]) -> np.ndarray:
        parts = self._pool.call(method, args)
        total = np.zeros_like(np.asarray(parts[0], dtype=np.float64))
        for weight, part in zip(self.weights, parts, strict=True):  # shard order: the same sum on every call
            total += weight * np.asarray(part, dtype=np.float64)
        return total

    def loss(self, theta: np.ndarray | torch.Tensor | None = None) -> float:
        """Mean loss over the whole evaluation set at θ (None: the model's parameters)."""
        return float(self._reduce("loss", (self._theta(theta),)))

    def grad(self, theta: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
        """Gradient of the mean loss at θ."""
        return self._reduce("grad", (self._theta(theta),))

    def value_and_grad(self, theta: np.ndarray | torch.Tensor | None = None) -> tuple[float, np.ndarray]:
        """Mean loss and gradient at θ in one pass per worker."""
        both = self._reduce("value_and_grad", (self._theta(theta),))
        return float(both[0]), both[1:]

    def hvp(self, theta: np.ndarray | torch.Tensor | None, v: np.ndarray | torch.Tensor) -> np.ndarray:
        """H(θ) v of the mean loss."""
        v_np = np.ascontiguousarray(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, np.float64))
        if v_np.shape != (self.n_params,):
            raise ConfigError("v", v_np.shape, f"expected shape ({self.n_params},)")
        return self._reduce("hvp", (self._theta(theta), v_np))

    def hessian_operator(self, theta: np.ndarray | torch.Tensor | None = None) -> LinearOperator:
        """Exact HVPs at θ as a :class:`~qlandscape.core.operators.LinearOperator` (ValueError when the loss
        there is not finite), for Lanczos, Hutchinson and SLQ."""
        point = self._theta(theta)
        value = self.loss(point)
        if not np.isfinite(value):
            raise ValueError(f"the loss at this parameter vector is {value}; curvature metrics need a finite loss")
        return LinearOperator(self.n_params, lambda v: self.hvp(point, v), name=f"Hessian of {self!r}")

    def close(self) -> None:
        """Stop the workers (local processes exit; Dask actors are released, and a client made here closed)."""
        self._pool.close()

    def __enter__(self) -> DataParallelObjective:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _default_budget() -> int | None:
    return memory_budget(None)[0]
