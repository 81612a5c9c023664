"""Metrics over an Objective, one set for quantum and classical models: curvature, landscapes, kernels,
gradient statistics and fits. Each feature is compute functions plus frozen result dataclasses."""
