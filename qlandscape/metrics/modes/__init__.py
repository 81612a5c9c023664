"""The four landscape properties of Khan et al. (SoK, arXiv 2410.12927) over a set of models, one module each:
:mod:`~qlandscape.metrics.modes.connectivity` (linear, aligned and curved barriers),
:mod:`~qlandscape.metrics.modes.convexity` (Jensen gap, soups against the best ingredient),
:mod:`~qlandscape.metrics.modes.determinism` (barriers between runs differing in one source of randomness) and
:mod:`~qlandscape.metrics.modes.directedness` (cosines and principal directions of displacements), with their frozen
results in :mod:`~qlandscape.metrics.modes.results`."""
