"""All protocol steps of one env and grid, in the order their needs run, and what the store
holds of them."""

from __future__ import annotations

import functools

from ebnb.config import check_positive_int
from ebnb.experiments.dense import dense_step
from ebnb.experiments.exploit import eb_exploit_step
from ebnb.experiments.exploit_sweep import sweep_step
from ebnb.experiments.grids import EB_EXPLOIT_DEFAULTS, Grid, check_grid, grid
from ebnb.experiments.step import Step, available
from ebnb.experiments.tickets import POPULATION, compute_tickets, ticket_step
from ebnb.published import Published
from ebnb.store import Store

# every step `steps` can give, in its order (a grid without controls or sparser P has fewer)
STEP_NAMES = (
    "dense runs",
    "retrain",
    "winning tickets",
    "finetune",
    "eb_exploit",
    "sparse retrain",
    "sparse finetune",
    "retrain controls",
    "finetune controls",
    "eb_exploit sweep",
)


def steps(
    env: str,
    g: Grid,
    xi: float = EB_EXPLOIT_DEFAULTS["xi"],
    window: int = EB_EXPLOIT_DEFAULTS["window"],
    rewind: bool = EB_EXPLOIT_DEFAULTS["rewind"],
    population: int = POPULATION,
    **sweep_grid,
) -> dict[str, Step]:
    """The protocol steps for one env and grid that have units, by name, in an order that
    respects `needs` (EB Exploit with the given parameters, its sweep over `sweep_grid`:
    `ebnb.sweep.grid`'s xis, windows, detectors, starts; at most `population` tickets training
    at once in a shard, which changes no result)."""
    check_grid(g)
    tickets = functools.partial(compute_tickets, population=check_positive_int("population", population))
    return {
        step.name: step
        for step in (
            dense_step(env, g),
            *(ticket_step(env, g, name, tickets) for name in ("retrain", "winning tickets", "finetune")),
            eb_exploit_step(env, g, xi, window, rewind),
            *(
                ticket_step(env, g, name, tickets)
                for name in ("sparse retrain", "sparse finetune", "retrain controls", "finetune controls")
            ),
            sweep_step(env, g, sweep_grid, tickets),
        )
        if step.units
    }


def cache_status(env: str, g: Grid, store: Store) -> dict[str, tuple[int, int]]:
    """Per protocol step: (units stored, units in the grid); EB Exploit at its defaults."""
    return {
        name: (sum(store.exists(step.kind, u) for u in step.units), len(step.units))
        for name, step in steps(env, g).items()
    }


def held(
    env: str, profile: str, store: Store, published: Published | None, names: tuple[str, ...], **settings
) -> Grid | None:
    """The grid of `profile` if the store or `published` holds every unit of its steps `names`,
    EB Exploit's at `settings` (xi, window, rewind; the step functions then only load it), else
    None: nothing is computed."""
    g = grid(profile)
    wanted = [s for name, s in steps(env, g, **settings).items() if name in names]
    return g if available(store, wanted, published) else None
