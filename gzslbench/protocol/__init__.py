"""The GZSL evaluation protocol shared by every method: splits (train, test, validation), metrics,
calibrated stacking and AUSUC, the scores a method hands over, and the model-selection modes.

May import: :mod:`gzslbench.core`, :mod:`gzslbench.data`.
"""
