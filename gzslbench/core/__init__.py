"""Foundations every layer uses: errors, the method and dataset registries, config keys and ranges,
the runtime environment (device, code version) and atomic file writes.

May import: nothing of gzslbench (the standard library and third-party packages only).
"""
