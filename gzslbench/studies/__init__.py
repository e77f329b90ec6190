"""Studies built from many runs: sweeps over config grids, tuning on the validation split, and the
CI accuracy check against a committed baseline.

May import: everything below it (core .. execution, methods, datasets).
"""
