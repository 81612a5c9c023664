"""The built-in run metrics, one module each (hessian, landscape, ntk); :mod:`qlandscape.runs.registry` registers
them."""
