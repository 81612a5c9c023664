"""Landscapes: directions, 1D and 2D slices, linear interpolation and barriers, parent-child spawning."""
