"""The in-memory dataset (:class:`~gzslbench.data.dataset.GZSLData`) with its checks, where data
lives on disk, and downloading the xlsa17 release.

May import: :mod:`gzslbench.core`.
"""
