"""Model merging: alignment, merges, curved paths between modes and barriers, for QNNs and classical nets.

``from qlandscape.merging import align, merge``: :func:`~qlandscape.merging.alignment.align` returns a copy of
model B equal in function to B with its parameters moved next to model A's (weight matching for MLP and CNN,
periodic images for circuit angles); :func:`~qlandscape.merging.merges.merge` merges models of one architecture by
one of :data:`~qlandscape.merging.merges.MERGE_METHODS`. :mod:`qlandscape.merging.curves` trains and evaluates
Bezier and polygonal-chain paths; :mod:`qlandscape.merging.barriers` reports both barrier definitions.
"""

from qlandscape.merging.alignment import align
from qlandscape.merging.merges import MERGE_METHODS, merge

__all__ = ["MERGE_METHODS", "align", "merge"]
