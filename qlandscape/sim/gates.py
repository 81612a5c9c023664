"""The gate table: every gate a circuit may use, defined once.

Two kinds of gate:

* a :class:`Rotation` turns one wire by an angle, fed by a trainable parameter or an input feature:
  ``R(a) = exp(a G / 2) = cos(a/2) I + sin(a/2) G`` with its generator ``G = -iP`` (P a Pauli matrix). Its 2x2
  matrices, whether they are real (the engine keeps such layers real) and whether they are diagonal (phases, which
  a Z readout after signed permutations cannot see) all follow from G;
* an :class:`Entangler` acts on a (control, target) pair of wires as a signed permutation of their four basis
  states: ``U|l> = sign[l] |image[l]>`` with ``l = 2 * control bit + target bit`` (wire 0 most significant, as in
  PennyLane). A run of them composes into one permutation and one sign vector of the whole register.

Every entry also names its PennyLane operation, so a PennyLane device runs the same gate. The spec parser, the
lowering, the engine's matrices and the PennyLane backend read this table and nothing else: adding a gate is one
entry in :data:`GATES`. A name that is not in the table, or an entry that is not a complete :class:`Rotation` or
:class:`Entangler`, is a :class:`~qlandscape.core.errors.ConfigError` naming it wherever it is looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from qlandscape.core.errors import ConfigError

__all__ = [
    "Coefficients",
    "Rotation",
    "Entangler",
    "GATES",
    "rotation_names",
    "entangler_names",
    "rotation",
    "entangler",
]

_I = np.eye(2, dtype=complex)
_X = np.array([[0, 1], [1, 0]], dtype=complex)
_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
_Z = np.array([[1, 0], [0, -1]], dtype=complex)

Coefficients = tuple[float, float]  # an entry part as (coefficient of cos(a/2), coefficient of sin(a/2))


@dataclass(frozen=True, eq=False)
class Rotation:
    """A single-qubit rotation ``cos(a/2) I + sin(a/2) G`` fed by a parameter or a feature.

    ``generator`` is G (``-iP`` for a Pauli P; any 2x2 G with ``G @ G = -I`` and ``G^† = -G`` gives a unitary);
    ``pennylane`` is the name of the same operation in PennyLane. Derived from G: ``real`` (every matrix is real),
    ``diagonal`` (every matrix is a pair of phases) and, for the engine's batched matrices, the distinct
    ``terms`` of the entries' real and imaginary parts, as coefficients of cos(a/2) and sin(a/2), with the index
    of each entry's term (``real_entries`` and, unless real, ``imag_entries``; row-major).
    """

    name: str
    generator: NDArray[np.complex128]
    pennylane: str
    real: bool = field(init=False)
    diagonal: bool = field(init=False)
    terms: tuple[Coefficients, ...] = field(init=False, repr=False)
    real_entries: tuple[int, ...] = field(init=False, repr=False)
    imag_entries: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = f"gate {self.name}"
        if not isinstance(self.pennylane, str) or not self.pennylane:
            raise ConfigError(f"{where}.pennylane", self.pennylane, "expected the name of a PennyLane operation")
        g = _generator(self.generator, where)
        object.__setattr__(self, "generator", g)
        object.__setattr__(self, "real", bool((g.imag == 0).all()))
        object.__setattr__(self, "diagonal", bool(g[0, 1] == 0 and g[1, 0] == 0))
        # + 0.0 turns -0.0 into 0.0, so that equal terms are one term
        real_parts = [(float(j == k), float(g[j, k].real) + 0.0) for j in range(2) for k in range(2)]
        imag_parts = [] if self.real else [(0.0, float(g[j, k].imag) + 0.0) for j in range(2) for k in range(2)]
        terms = tuple(dict.fromkeys(real_parts + imag_parts))
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "real_entries", tuple(terms.index(t) for t in real_parts))
        object.__setattr__(self, "imag_entries", tuple(terms.index(t) for t in imag_parts))

    def matrix(self, angle: float) -> NDArray[np.complex128]:
        """The 2x2 matrix at ``angle``: ``cos(angle/2) I + sin(angle/2) G``."""
        matrix: NDArray[np.complex128] = np.cos(angle / 2) * _I + np.sin(angle / 2) * self.generator
        return matrix


@dataclass(frozen=True, eq=False)
class Entangler:
    """A two-qubit gate on (control, target) as a signed permutation of their basis states ``l = 2 c + t``:
    ``U|l> = sign[l] |image[l]>``. ``pennylane`` is the name of the same operation in PennyLane."""

    name: str
    image: tuple[int, int, int, int]
    sign: tuple[float, float, float, float]
    pennylane: str
    image_array: NDArray[np.int64] = field(init=False, repr=False)
    sign_array: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = f"gate {self.name}"
        if not isinstance(self.pennylane, str) or not self.pennylane:
            raise ConfigError(f"{where}.pennylane", self.pennylane, "expected the name of a PennyLane operation")
        if not isinstance(self.image, tuple) or sorted(self.image) != [0, 1, 2, 3]:
            raise ConfigError(f"{where}.image", self.image, "expected a permutation of the basis states (0, 1, 2, 3)")
        # The engine composes entanglers into a permutation and a real sign vector: other phases do not fit it.
        if not isinstance(self.sign, tuple) or len(self.sign) != 4 or any(s not in (1, -1) for s in self.sign):
            raise ConfigError(f"{where}.sign", self.sign, "expected four signs, each 1 or -1")
        object.__setattr__(self, "image_array", _read_only(np.array(self.image, dtype=np.int64)))
        object.__setattr__(self, "sign_array", _read_only(np.array(self.sign, dtype=np.float64)))

    def matrix(self) -> NDArray[np.float64]:
        """The 4x4 matrix on (control, target), control the more significant wire."""
        u = np.zeros((4, 4))
        u[self.image_array, np.arange(4)] = self.sign_array
        return u


def _generator(value: object, where: str) -> NDArray[np.complex128]:
    """``value`` as a read-only complex 2x2 generator, after checking that it makes a rotation."""
    try:
        g = np.array(value, dtype=complex)
    except (TypeError, ValueError):
        g = None
    if g is None or g.shape != (2, 2) or not np.isfinite(g).all():
        raise ConfigError(f"{where}.generator", value, "expected a 2x2 matrix G (the rotation is cos I + sin G)")
    if not (np.allclose(g @ g, -_I, atol=1e-12) and np.allclose(g.conj().T, -g, atol=1e-12)):
        raise ConfigError(
            f"{where}.generator", value, "expected G @ G = -I and G^† = -G (G = -iP for a Pauli P), so R is unitary"
        )
    # exactly anti-Hermitian (a no-op for -iP): the real part of the diagonal is then exactly 0, so each entry of
    # cos I + sin G is cos or a multiple of sin (see Rotation.terms)
    return _read_only((g - g.conj().T) / 2)


_T = TypeVar("_T", bound=np.generic)


def _read_only(array: NDArray[_T]) -> NDArray[_T]:
    array.setflags(write=False)  # a table constant: shared by every plan, never written
    return array


GATES: dict[str, Rotation | Entangler] = {
    gate.name: gate
    for gate in (
        Rotation("RX", -1j * _X, pennylane="RX"),
        Rotation("RY", -1j * _Y, pennylane="RY"),
        Rotation("RZ", -1j * _Z, pennylane="RZ"),
        Entangler("CNOT", image=(0, 1, 3, 2), sign=(1, 1, 1, 1), pennylane="CNOT"),  # flips t where c is set
        Entangler("CZ", image=(0, 1, 2, 3), sign=(1, 1, 1, -1), pennylane="CZ"),  # -1 where both are set
    )
}


def rotation_names() -> tuple[str, ...]:
    """Names of the rotations in the table, in table order."""
    return tuple(name for name, gate in GATES.items() if isinstance(gate, Rotation) and gate.name == name)


def entangler_names() -> tuple[str, ...]:
    """Names of the entanglers in the table, in table order."""
    return tuple(name for name, gate in GATES.items() if isinstance(gate, Entangler) and gate.name == name)


def rotation(name: str) -> Rotation:
    """The table's rotation ``name``; a :class:`ConfigError` naming it when the table has no such rotation."""
    gate = GATES.get(name)
    if not isinstance(gate, Rotation) or gate.name != name:
        raise ConfigError("gate", name, f"expected a rotation among {rotation_names()} (see qlandscape.sim.gates)")
    return gate


def entangler(name: str) -> Entangler:
    """The table's entangler ``name``; a :class:`ConfigError` naming it when the table has no such entangler."""
    gate = GATES.get(name)
    if not isinstance(gate, Entangler) or gate.name != name:
        raise ConfigError("gate", name, f"expected an entangler among {entangler_names()} (see qlandscape.sim.gates)")
    return gate
