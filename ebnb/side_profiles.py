"""The profiles published beside the full one (`SIDE_PROFILES`): for each, the protocol steps
whose units join results/ and the notebooks executed at it that are published with them
(`ebnb.publish`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Side(NamedTuple):
    """A profile published beside the full one: `steps(env, store, current)`, the protocol
    steps whose units join results/ (None: not defined yet, e.g. without the full sweep), and
    its `notebooks`, published where executed at it for every env."""

    steps: Callable
    notebooks: tuple[str, ...]


def _grid_steps(profile: str, names: tuple[str, ...], **settings) -> Callable:
    """The steps `names` of `profile`'s grid (EB Exploit's `settings`: xi, window, rewind)."""

    def chosen(env: str, store, current) -> list:
        from ebnb import experiments

        steps = experiments.steps(env, experiments.grid(profile), **settings)
        return [step for name, step in steps.items() if name in names]

    return chosen


def _fresh_steps(env: str, store, current) -> list | None:
    """Notebook 06's hypotheses on its fresh seeds (`ebnb.experiments.sweep_at_steps`)."""
    from ebnb import experiments

    settings = experiments.sweep_hypotheses(env, store, current)
    return None if settings is None else experiments.sweep_at_steps(env, experiments.grid("sweep_fresh"), settings)


def _small_xi_steps(env: str, store, current) -> list:
    """EB Exploit at `ebnb.experiments.SMALL_XIS` read off the mask traces (the sweep of
    `ebnb.experiments.exploit_grid`) with its dense runs (CartPole's: `_cartpole_only`)."""
    from ebnb import experiments
    from ebnb.experiments.exploit_sweep import sweep_step

    g = experiments.grid("small_xi")
    sweep_grid = experiments.exploit_grid(experiments.SMALL_XIS, experiments.EB_EXPLOIT_DEFAULTS["window"])
    return [experiments.dense_step(env, g), sweep_step(env, g, sweep_grid)]


def _cartpole_only(chosen: Callable) -> Callable:
    """`chosen`'s steps for CartPole, none for another env."""

    def steps(env: str, store, current) -> list:
        from ebnb.envs import canonical_env

        return chosen(env, store, current) if canonical_env(env) == "cartpole" else []

    return steps


# in the order their units enter each table of results/ (then the full profile's: units shared by
# config hash are listed once)
SIDE_PROFILES = {
    "full_sparse": Side(
        _grid_steps(
            "full_sparse",
            (
                "dense runs",
                "retrain",
                "finetune",
                "sparse retrain",
                "sparse finetune",
                "retrain controls",
                "finetune controls",
            ),
        ),
        ("05_controls",),
    ),
    "full15": Side(_grid_steps("full15", ("dense runs", "retrain", "winning tickets", "finetune", "eb_exploit")), ()),
    "sweep_fresh": Side(_fresh_steps, ()),
    "small_xi": Side(_cartpole_only(_small_xi_steps), ()),
    "rewind": Side(_grid_steps("rewind", ("eb_exploit",), rewind=True), ()),
    "gym_terminal": Side(
        _grid_steps("gym_terminal", ("dense runs", "retrain", "winning tickets", "finetune", "eb_exploit")),
        ("01_mask_similarity", "02_retrain", "03_finetune", "04_eb_exploit"),
    ),
    "powered": Side(
        _cartpole_only(_grid_steps("powered", ("dense runs", "retrain", "winning tickets", "finetune"))), ()
    ),
}
