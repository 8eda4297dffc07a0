"""Training utilities shared by all algorithms: scanned update chunks, orbax checkpoints, metrics logging."""
