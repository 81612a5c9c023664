"""The ansatz catalogue: one TOML spec per ansatz, shipped in the wheel as qlandscape.circuits_catalogue."""
