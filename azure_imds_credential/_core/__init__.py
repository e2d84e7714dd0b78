"""The pure core: IMDS protocol logic with no I/O, no clock reads, no sleeping, no locks.

Everything here is driven by the sync and async shells, and tested as tables.
"""
