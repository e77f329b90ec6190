"""Run records and where they live: the record schema, the results store (paths, atomic reads and
writes, resume), claims that keep two commands off one run, and loading records into pandas
with aggregation over seeds.

May import: :mod:`gzslbench.core`, :mod:`gzslbench.data`, :mod:`gzslbench.protocol`.
"""
