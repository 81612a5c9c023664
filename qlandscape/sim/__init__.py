"""Simulation: the gate table, circuit specs and the ansatz catalogue, lowering and plans, our batched torch
state-vector engine, and the backends (our engine, PennyLane devices) that run one circuit the same way."""
