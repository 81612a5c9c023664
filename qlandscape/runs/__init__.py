"""Runs: run configs, run directories, the registry of run metrics, sweeps and the report over runs."""
