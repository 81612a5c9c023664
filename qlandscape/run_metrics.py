"""Post-training metrics a run config can ask for in its ``metrics`` table (registered hooks)."""
from __future__ import annotations
