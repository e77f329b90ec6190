"""Turning a request into records: run specs, config resolution, option checks, the process
planner, executing a unit of seeds, scheduling units in rounds on processes or Dask, process
settings, and :func:`gzslbench.run`.

May import: core, data, protocol, results, and the registered ``gzslbench.methods`` and
``gzslbench.datasets``.
"""
