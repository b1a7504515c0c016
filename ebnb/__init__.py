"""ebnb: Early-Bird tickets in deep RL, reproduced (batched DQN populations, masks, experiments)."""

from ebnb import numba_cache

numba_cache.install()  # before any module of the package compiles (see ebnb.numba_cache)
