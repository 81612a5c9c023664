"""Curvature: Hessian spectra (dense, Lanczos, power iteration), Hutchinson traces, spectral densities (SLQ) and
the structured Gauss-Newton + residual decomposition."""
