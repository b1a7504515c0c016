"""The profiles published beside the full one (`SIDE_PROFILES`): for each, the protocol steps
whose units join results/ and the notebooks executed at it that are published with them
(`ebnb.publish`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Side(NamedTuple):
    """A profile published beside the full one: `steps(env, store, current)`, the protocol
    steps whose units join results/ (None: not defined yet, e.g. without the full sweep; []
    for an env outside `envs`), its `notebooks`, published where executed at it for every env
    of `envs`, and `envs`, the canonical names of the envs it is defined for (empty: every env)."""

    steps: Callable
    notebooks: tuple[str, ...]
    envs: tuple[str, ...] = ()

    def runs_on(self, env: str) -> bool:
        """Whether the profile is defined for `env` (any spelling)."""
        from ebnb.envs import canonical_env

        return not self.envs or canonical_env(env) in self.envs


def _side(steps: Callable, notebooks: tuple[str, ...] = (), envs: tuple[str, ...] = ()) -> Side:
    """A `Side` whose steps are `steps`'s for the envs `envs` (empty: every env) and none for another."""
    return Side(_only(envs, steps) if envs else steps, notebooks, envs)


def _grid_steps(profile: str, names: tuple[str, ...], **settings) -> Callable:
    """The steps `names` of `profile`'s grid (EB Exploit's `settings`: xi, window, rewind)."""

    def chosen(env: str, store, current) -> list:
        from ebnb import experiments

        steps = experiments.steps(env, experiments.grid(profile), **settings)
        return [step for name, step in steps.items() if name in names]

    return chosen


def _hypotheses_steps(profile: str, rewind: bool = False) -> Callable:
    """Notebook 06's hypotheses (`ebnb.experiments.sweep_hypotheses`) on the seeds of
    `profile`'s grid (`ebnb.experiments.sweep_at_steps`), each ticket retrained from m * theta_0
    with `rewind`; None without the full profile's sweep."""

    def steps(env: str, store, current) -> list | None:
        from ebnb import experiments

        settings = experiments.sweep_hypotheses(env, store, current)
        if settings is None:
            return None
        return experiments.sweep_at_steps(env, experiments.grid(profile), settings, rewind)

    return steps


def _small_xi_steps(env: str, store, current) -> list:
    """EB Exploit at `ebnb.experiments.SMALL_XIS` read off the mask traces (the sweep of
    `ebnb.experiments.exploit_grid`) with its dense runs (CartPole's: `_side`'s envs)."""
    from ebnb import experiments
    from ebnb.experiments.exploit_sweep import sweep_step

    g = experiments.grid("small_xi")
    sweep_grid = experiments.exploit_grid(experiments.SMALL_XIS, experiments.EB_EXPLOIT_DEFAULTS["window"])
    return [experiments.dense_step(env, g), sweep_step(env, g, sweep_grid)]


def _only(names: tuple[str, ...], chosen: Callable) -> Callable:
    """`chosen`'s steps for the envs `names` (canonical names: "cartpole", "acrobot"), none for
    another env."""

    def steps(env: str, store, current) -> list:
        from ebnb.envs import canonical_env

        return chosen(env, store, current) if canonical_env(env) in names else []

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
    "sweep_fresh": Side(_hypotheses_steps("sweep_fresh"), ()),
    "small_xi": _side(_small_xi_steps, envs=("cartpole",)),
    "rewind": Side(_grid_steps("rewind", ("eb_exploit",), rewind=True), ()),
    "gym_terminal": Side(
        _grid_steps("gym_terminal", ("dense runs", "retrain", "winning tickets", "finetune", "eb_exploit")),
        ("01_mask_similarity", "02_retrain", "03_finetune", "04_eb_exploit"),
    ),
    "powered": _side(
        _grid_steps("powered", ("dense runs", "retrain", "winning tickets", "finetune")), envs=("cartpole",)
    ),
    # Acrobot's observations scaled to [-1, 1] (issue 31's variant 6): notebooks 01-03 executed for Acrobot only
    "acrobot_scaled": _side(
        _grid_steps("acrobot_scaled", ("dense runs", "retrain", "winning tickets", "finetune")),
        ("01_mask_similarity", "02_retrain", "03_finetune"),
        envs=("acrobot",),
    ),
    "sweep_rewind": Side(_hypotheses_steps("sweep_rewind", rewind=True), ()),
    # every round of the IMP winning tickets (their dense runs are the full profile's)
    "imp": Side(_grid_steps("imp", ("imp tickets",)), ()),
    # imp's rounds, a fifth at P = 0.9 and the one-shot winning ticket there (its first four rounds are imp's units)
    "imp_sparse": Side(_grid_steps("imp_sparse", ("imp tickets",)), ()),
}
