"""Core: what every layer shares. Errors, open-format I/O, losses, the Objective and the linear-operator interface
that every curvature algorithm takes. Imports nothing else of qlandscape."""
