"""The ansatz catalogue: circuit specs in TOML compiled into a flat gate list every backend runs.

A spec is data, not code. It holds ``name``, ``description``, ``observables`` (Paulis measured on every qubit, or
on ``measure_qubits``), ``init`` (``{distribution = "uniform", low, high}`` or ``{distribution = "normal", std}``)
and a list of ``[[block]]`` tables, applied in order:

``type = "encode"``
    Data encoding. ``gates`` is the gate sequence for one feature, e.g. ``["x:RY"]`` or the sandwich
    ``["RY", "x:RX", "RY"]``; a token ``x:G`` rotates by the next input feature, a plain ``G`` is trainable.
    ``alternate`` (optional) is a list of sequences used in turn by feature index (even, odd, ...).
    ``features_per_qubit`` (default 1) features go to each qubit; ``order`` is ``"qubit"`` (features
    q*k .. q*k+k-1 on qubit q) or ``"round-robin"`` (feature f on qubit f mod n). ``entangler``/``pattern``
    optionally follow the block.
``type = "layers"``
    ``repeat`` times (an integer, or ``"layers"`` for the L that sweeps vary) the sequence ``gates`` on every
    qubit, then the entangler. ``reupload = true`` re-reads the same features in every repetition (data
    re-uploading). ``skip_last_entangler = true`` leaves out the entangler of the last repetition.

Gates: the rotations (RX, RY, RZ) and entanglers (CNOT, CZ, or none) of the gate table,
:mod:`qlandscape.sim.gates`; patterns: chain, ring, all-to-all, strong (entangler i -> i + r with the range r
cycling through 1 .. n-1 with the repetition index, as in StronglyEntanglingLayers). Wire 0 is the most
significant qubit, as in PennyLane.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from qlandscape.core.errors import ConfigError, check_positive_int, is_finite_number
from qlandscape.core.io import read_toml
from qlandscape.core.memory import check_fits, format_seconds
from qlandscape.sim.gates import entangler_names, rotation_names

__all__ = [
    "MAX_GATES",
    "MAX_GATES_ENV",
    "COMPILE_SECONDS_PER_GATE",
    "NO_ENTANGLER",
    "PATTERNS",
    "PAULIS",
    "BLOCK_TYPES",
    "Gate",
    "Circuit",
    "CircuitSpec",
    "gate_limit",
    "parse_spec",
    "catalogue_dir",
    "catalogue",
    "load_spec",
    "build_circuit",
]

# Compiling (gate list, lowering, plan) costs about 17 us and 0.9 kB per gate on one core (hea, 4 qubits,
# 120k to 1.2M gates), and every forward pass applies each gate: a circuit of more than MAX_GATES is refused up
# front (100 000 gates: about 2 s to compile; the Kawase 2025 circuit at 200 layers on 8 qubits has 15k).
MAX_GATES = 100_000
MAX_GATES_ENV = "QLANDSCAPE_MAX_GATES"
COMPILE_SECONDS_PER_GATE = 1.7e-5
NO_ENTANGLER = "none"
PATTERNS = ("chain", "ring", "all-to-all", "strong")
PAULIS = ("X", "Y", "Z")
BLOCK_TYPES = ("encode", "layers")
_BLOCK_KEYS = {
    "encode": {"type", "gates", "alternate", "features_per_qubit", "order", "entangler", "pattern"},
    "layers": {"type", "repeat", "gates", "entangler", "pattern", "reupload", "skip_last_entangler"},
}
_SPEC_KEYS = {"name", "description", "observables", "measure_qubits", "init", "block"}
_INIT_KEYS = {"uniform": {"distribution", "low", "high"}, "normal": {"distribution", "std"}}


@dataclass(frozen=True)
class Gate:
    """One gate: a rotation fed by a trainable parameter or an input feature, or a two-qubit entangler."""

    name: str
    wires: tuple[int, ...]
    source: str | None = None  # "param" | "feature" | None for entanglers
    index: int = -1


@dataclass(frozen=True)
class Circuit:
    """A compiled circuit: the gate list for a given (spec, qubits, layers), with counts and readout."""

    name: str
    n_qubits: int
    n_layers: int
    gates: tuple[Gate, ...]
    n_params: int
    n_features: int
    observables: tuple[tuple[str, int], ...]
    init: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    source: str = ""

    def __hash__(self) -> int:
        return self._hash

    @cached_property
    def _hash(self) -> int:
        # computed once: the engine's plan cache hashes the circuit on every call (24 µs for 16 layers' gates)
        return hash(
            (
                self.name,
                self.n_qubits,
                self.n_layers,
                self.gates,
                self.n_params,
                self.n_features,
                self.observables,
                self.source,
            )
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_hash", None)  # string hashes differ between processes: never ship a cached one
        return state

    @property
    def n_outputs(self) -> int:
        return len(self.observables)

    def init_params(
        self, shape: tuple[int, ...], generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> torch.Tensor:
        """Initial angles of shape ``shape + (n_params,)`` drawn from the spec's init distribution."""
        full = (*shape, self.n_params)
        dist = self.init.get("distribution", "uniform")
        if dist == "normal":
            return torch.randn(full, generator=generator, dtype=dtype) * float(self.init.get("std", 1.0))
        low, high = float(self.init.get("low", 0.0)), float(self.init.get("high", 2 * math.pi))
        return low + (high - low) * torch.rand(full, generator=generator, dtype=dtype)


@dataclass(frozen=True)
class CircuitSpec:
    """A parsed (validated) ansatz spec; :meth:`build` compiles it for a number of qubits and layers."""

    name: str
    description: str
    blocks: tuple[dict[str, Any], ...]
    observables: tuple[str, ...]
    measure_qubits: tuple[int, ...] | None
    init: dict[str, Any]
    source: str

    def build(
        self,
        n_qubits: int,
        n_layers: int,
        observables: Iterable[str] | None = None,
        measure_qubits: Iterable[int] | None = None,
    ) -> Circuit:
        """Compile the spec into a :class:`Circuit` for ``n_qubits`` qubits and ``n_layers`` layers; a circuit too
        large to compile or simulate here is refused first (:meth:`check_size`)."""
        n_qubits = check_positive_int("qubits", n_qubits, source=self.source)
        n_layers = check_positive_int("layers", n_layers, minimum=0, source=self.source)
        self.check_size(n_qubits, n_layers)
        if isinstance(observables, str):  # tuple("XZ") would silently read as ["X", "Z"]
            raise ConfigError(
                "observables", observables, "expected a list of Paulis such as ['X', 'Z']", source=self.source
            )
        obs = tuple(observables) if observables is not None else self.observables
        for p in obs:
            if p not in PAULIS:
                raise ConfigError("observables", p, f"expected Paulis among {PAULIS}", source=self.source)
        qubits = (
            _qubit_list(measure_qubits, self.source)
            if measure_qubits is not None
            else self.measure_qubits
            if self.measure_qubits is not None
            else tuple(range(n_qubits))
        )
        for q in qubits:
            if not 0 <= q < n_qubits:
                raise ConfigError("measure_qubits", q, f"expected qubits in 0..{n_qubits - 1}", source=self.source)
        if not obs or not qubits:
            raise ConfigError(
                "observables" if not obs else "measure_qubits",
                obs if not obs else qubits,
                "expected at least one measured observable",
                source=self.source,
            )
        builder = _Builder(n_qubits)
        for block in self.blocks:
            if block["type"] == "encode":
                builder.encode(block)
            else:
                builder.layers(block, n_layers)
        return Circuit(
            name=self.name,
            n_qubits=n_qubits,
            n_layers=n_layers,
            gates=tuple(builder.gates),
            n_params=builder.n_params,
            n_features=builder.n_features,
            observables=tuple((p, q) for p in obs for q in qubits),
            init=dict(self.init),
            source=self.source,
        )

    def n_params(self, n_qubits: int, n_layers: int) -> int:
        """Trainable parameters per circuit for (qubits, layers)."""
        return self.build(n_qubits, n_layers).n_params

    def gate_count(self, n_qubits: int, n_layers: int) -> int:
        """Gates of the circuit for (qubits, layers), counted without building it (as :meth:`build` places them)."""
        total = 0
        for block in self.blocks:
            gate, pattern = block.get("entangler", NO_ENTANGLER), block.get("pattern", "ring")
            if block["type"] == "encode":
                k = block.get("features_per_qubit", 1)
                sequences = block.get("alternate") or [block["gates"]]
                total += sum(len(sequences[f % len(sequences)]) for f in range(k * n_qubits))
                total += _entangler_pairs(gate, pattern, n_qubits)
            else:
                repeat = n_layers if block.get("repeat", "layers") == "layers" else int(block["repeat"])
                entangled = repeat - (1 if repeat and block.get("skip_last_entangler", False) else 0)
                total += repeat * n_qubits * len(block["gates"]) + entangled * _entangler_pairs(gate, pattern, n_qubits)
        return total

    def check_size(self, n_qubits: int, n_layers: int, *, max_gates: int | None = None) -> None:
        """Refuse, with :class:`ConfigError`, a circuit whose gate list is over ``max_gates`` (default
        :func:`max_gates`: compiling and every forward pass are linear in it) or whose state vector is over the
        memory budget (:mod:`qlandscape.core.memory`); nothing is built or allocated."""
        limit = gate_limit() if max_gates is None else check_positive_int("max_gates", max_gates)
        gates = self.gate_count(n_qubits, n_layers)
        if gates > limit:
            per_layer = self.gate_count(n_qubits, n_layers + 1) - gates
            field, value, fix = "qubits", n_qubits, "fewer qubits"
            if per_layer > 0 and n_layers > 0:
                most = max(0, (limit - self.gate_count(n_qubits, 0)) // per_layer)
                field, value, fix = "layers", n_layers, f"layers <= {most} for {self.name} on {_qubits(n_qubits)}"
            raise ConfigError(
                field,
                value,
                f"{self.name} on {_qubits(n_qubits)} with {n_layers} layers has {gates:,} gates; compiling alone takes "
                f"about {format_seconds(gates * COMPILE_SECONDS_PER_GATE)} and every forward pass applies each gate; "
                f"at most {limit:,} gates are allowed ({fix}; set {MAX_GATES_ENV} to allow more)",
                source=self.source,
            )
        check_fits(
            16 * 2.0**n_qubits,
            f"one state vector of {_qubits(n_qubits)} (2**{n_qubits} amplitudes x 16 bytes)",
            "use fewer qubits",
            field="qubits",
            value=n_qubits,
            source=self.source,
        )


def _entangler_pairs(gate: str, pattern: str, n: int) -> int:
    """Two-qubit gates of one entangler (as :meth:`_Builder._entangle` places them)."""
    if gate == NO_ENTANGLER or n < 2:
        return 0
    return {"chain": n - 1, "ring": n if n > 2 else 1, "all-to-all": n * (n - 1) // 2, "strong": n}[pattern]


def _qubits(n: int) -> str:
    return f"{n} qubit" if n == 1 else f"{n} qubits"


def gate_limit() -> int:
    """The most gates a circuit may have: ``QLANDSCAPE_MAX_GATES`` when set, else :data:`MAX_GATES`."""
    text = os.environ.get(MAX_GATES_ENV, "").strip()
    if not text:
        return MAX_GATES
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(MAX_GATES_ENV, text, "expected a positive whole number of gates")
    return int(text)


class _Builder:
    def __init__(self, n_qubits: int) -> None:
        self.n = n_qubits
        self.gates: list[Gate] = []
        self.n_params = 0
        self.n_features = 0
        self.cursor = 0

    def _data_gate(self, name: str, wire: int, feature: int) -> None:
        self.gates.append(Gate(name, (wire,), "feature", feature))
        self.n_features = max(self.n_features, feature + 1)

    def _param_gate(self, name: str, wire: int) -> None:
        self.gates.append(Gate(name, (wire,), "param", self.n_params))
        self.n_params += 1

    def _entangle(self, gate: str, pattern: str, repetition: int) -> None:
        n = self.n
        if gate == NO_ENTANGLER or n < 2:
            return
        if pattern == "chain":
            pairs = [(i, i + 1) for i in range(n - 1)]
        elif pattern == "ring":
            pairs = [(i, (i + 1) % n) for i in range(n)] if n > 2 else [(0, 1)]
        elif pattern == "all-to-all":
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        elif pattern == "strong":
            r = repetition % (n - 1) + 1
            pairs = [(i, (i + r) % n) for i in range(n)]
        else:
            raise ConfigError("pattern", pattern, f"expected one of {PATTERNS}")
        self.gates.extend(Gate(gate, pair) for pair in pairs)

    def encode(self, block: dict[str, Any]) -> None:
        k = block.get("features_per_qubit", 1)
        sequences = block.get("alternate") or [block["gates"]]
        start = self.cursor
        for f in range(k * self.n):
            wire = f // k if block.get("order", "qubit") == "qubit" else f % self.n
            for token in sequences[f % len(sequences)]:
                if token.startswith("x:"):
                    self._data_gate(token[2:], wire, start + f)
                else:
                    self._param_gate(token, wire)
        self.cursor = start + k * self.n
        self._entangle(block.get("entangler", NO_ENTANGLER), block.get("pattern", "ring"), 0)

    def layers(self, block: dict[str, Any], n_layers: int) -> None:
        repeat = n_layers if block.get("repeat", "layers") == "layers" else int(block["repeat"])
        start = self.cursor
        for rep in range(repeat):
            base = start if block.get("reupload", False) else self.cursor
            used = 0
            for wire in range(self.n):
                data_tokens = 0
                for token in block["gates"]:
                    if token.startswith("x:"):
                        self._data_gate(token[2:], wire, base + data_tokens * self.n + wire)
                        data_tokens += 1
                    else:
                        self._param_gate(token, wire)
                used = data_tokens * self.n
            self.cursor = base + used
            last = rep == repeat - 1
            if not (last and block.get("skip_last_entangler", False)):
                self._entangle(block.get("entangler", NO_ENTANGLER), block.get("pattern", "ring"), rep)


def _qubit_list(value: Any, source: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError("measure_qubits", value, "expected a list of qubit indices", source=source)
    return tuple(check_positive_int("measure_qubits", q, minimum=0, source=source) for q in value)


def _validate_init(init: Any, source: str) -> dict[str, Any]:
    if not isinstance(init, dict):
        raise ConfigError(
            "init", init, "expected a table such as {distribution = 'uniform', low = 0.0, high = 6.28}", source=source
        )
    dist = init.get("distribution", "uniform")
    if dist not in _INIT_KEYS:
        raise ConfigError("init.distribution", dist, "expected 'uniform' or 'normal'", source=source)
    # a misspelt or foreign key (lo, mean) would otherwise silently leave the default in place
    extra = set(init) - _INIT_KEYS[dist]
    if extra:
        key = sorted(extra)[0]
        raise ConfigError(
            f"init.{key}",
            init[key],
            f"is not a field of a {dist!r} init (allowed: {sorted(_INIT_KEYS[dist])})",
            source=source,
        )
    values = {}
    for key in sorted(_INIT_KEYS[dist] - {"distribution"}):
        if key in init:
            v = init[key]
            if not is_finite_number(v):
                raise ConfigError(f"init.{key}", v, "expected a finite number", source=source)
            values[key] = float(v)
    if dist == "normal" and values.get("std", 1.0) <= 0:
        raise ConfigError("init.std", values["std"], "expected a positive standard deviation", source=source)
    if dist == "uniform" and not values.get("low", 0.0) < values.get("high", 2 * math.pi):
        raise ConfigError("init", init, "expected low < high", source=source)
    return dict(init)


def _validate_tokens(tokens: Any, where: str, source: str) -> None:
    if not isinstance(tokens, list) or not tokens:
        raise ConfigError(where, tokens, "expected a non-empty list of gate names like 'RY' or 'x:RX'", source=source)
    rotations = rotation_names()
    for token in tokens:
        gate = token[2:] if isinstance(token, str) and token.startswith("x:") else token
        if gate not in rotations:
            raise ConfigError(where, token, f"expected gates among {rotations} (prefix 'x:' for data)", source=source)


def parse_spec(data: dict[str, Any], source: str = "<dict>") -> CircuitSpec:
    """Validate a spec given as a dict (as read from TOML) and return a :class:`CircuitSpec`."""
    unknown = set(data) - _SPEC_KEYS
    if unknown:
        raise ConfigError("field", sorted(unknown)[0], f"expected fields among {sorted(_SPEC_KEYS)}", source=source)
    for key in ("name", "block"):
        if key not in data:
            raise ConfigError(key, None, "is required", source=source)
    blocks = data["block"]
    if not isinstance(blocks, list) or not blocks:
        raise ConfigError("block", blocks, "expected at least one [[block]] table", source=source)
    for i, block in enumerate(blocks):
        where = f"block[{i}]"
        if not isinstance(block, dict):
            raise ConfigError(where, block, "expected a [[block]] table", source=source)
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            raise ConfigError(f"{where}.type", kind, f"expected one of {BLOCK_TYPES}", source=source)
        extra = set(block) - _BLOCK_KEYS[kind]
        if extra:
            raise ConfigError(
                f"{where}.{sorted(extra)[0]}",
                block[sorted(extra)[0]],
                f"is not a field of a {kind!r} block (allowed: {sorted(_BLOCK_KEYS[kind])})",
                source=source,
            )
        if "alternate" in block:
            if not isinstance(block["alternate"], list) or not block["alternate"]:
                raise ConfigError(
                    f"{where}.alternate", block["alternate"], "expected a list of gate sequences", source=source
                )
            sequences = [(f"{where}.alternate[{j}]", seq) for j, seq in enumerate(block["alternate"])]
        else:
            if "gates" not in block:
                raise ConfigError(f"{where}.gates", None, "is required", source=source)
            sequences = [(f"{where}.gates", block["gates"])]
        for name, seq in sequences:
            _validate_tokens(seq, name, source)
            # an encode sequence without data would still use up its features, which then reach no gate
            if kind == "encode" and not any(t.startswith("x:") for t in seq):
                raise ConfigError(
                    name, seq, "an encode block's sequence needs a data gate ('x:RY', ...)", source=source
                )
        for flag in ("reupload", "skip_last_entangler"):
            if flag in block and not isinstance(block[flag], bool):  # "false" is a true-ish string
                raise ConfigError(f"{where}.{flag}", block[flag], "expected true or false", source=source)
        entanglers = (*entangler_names(), NO_ENTANGLER)
        if block.get("entangler", NO_ENTANGLER) not in entanglers:
            raise ConfigError(f"{where}.entangler", block["entangler"], f"expected one of {entanglers}", source=source)
        if block.get("pattern", "ring") not in PATTERNS:
            raise ConfigError(f"{where}.pattern", block["pattern"], f"expected one of {PATTERNS}", source=source)
        if block.get("order", "qubit") not in ("qubit", "round-robin"):
            raise ConfigError(f"{where}.order", block["order"], "expected 'qubit' or 'round-robin'", source=source)
        k = block.get("features_per_qubit", 1)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"{where}.features_per_qubit", k, "expected an integer >= 1", source=source)
        repeat = block.get("repeat", "layers")
        if repeat != "layers" and (isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0):
            raise ConfigError(f"{where}.repeat", repeat, "expected 'layers' or an integer >= 0", source=source)
    observables = data.get("observables", ["Z"])
    if not isinstance(observables, list) or not observables or any(p not in PAULIS for p in observables):
        raise ConfigError("observables", observables, f"expected a non-empty list of {PAULIS}", source=source)
    init = _validate_init(data.get("init", {"distribution": "uniform", "low": 0.0, "high": 2 * math.pi}), source)
    mq = data.get("measure_qubits")
    if mq is not None:
        mq = _qubit_list(mq, source)
        if not mq:  # an empty list would silently mean "every qubit"
            raise ConfigError(
                "measure_qubits", [], "expected at least one qubit (omit the field for all)", source=source
            )
    return CircuitSpec(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        blocks=tuple(blocks),
        observables=tuple(observables),
        measure_qubits=mq,
        init=init,
        source=source,
    )


def catalogue_dir() -> Path:
    """Folder holding the shipped ``*.toml`` specs (inside the wheel, or ``circuits/`` in a checkout)."""
    try:
        path = Path(str(resources.files("qlandscape.circuits_catalogue")))
        if path.is_dir() and any(path.glob("*.toml")):
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "circuits"


def catalogue() -> dict[str, Path]:
    """Names of the shipped ansätze mapped to their spec files."""
    return {p.stem: p for p in sorted(catalogue_dir().glob("*.toml"))}


def load_spec(name_or_path: str | Path) -> CircuitSpec:
    """Load a spec by catalogue name (``"hea"``) or from a path to a user's TOML file."""
    text = str(name_or_path)
    known = catalogue()
    if text in known:
        path = known[text]
    elif text.endswith(".toml") or Path(text).exists():
        path = Path(text)
        if not path.exists():
            raise ConfigError("ansatz", text, "no such spec file")
    else:
        raise ConfigError("ansatz", text, f"expected a catalogue name among {sorted(known)} or a path to a .toml spec")
    return parse_spec(read_toml(path, "ansatz"), source=str(path))


def build_circuit(ansatz: str | Path, n_qubits: int, n_layers: int, **kwargs: Any) -> Circuit:
    """Load a spec and compile it: ``build_circuit("hea", 4, 2)``."""
    return load_spec(ansatz).build(n_qubits, n_layers, **kwargs)
