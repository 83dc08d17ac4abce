"""The pure core: no I/O, no clock reads, no randomness of its own.

Every function here takes `now` and a `random.Random` when it needs them and returns values.
`tests/test_core_purity.py` fails if a module in this package imports an I/O library.
"""
