"""The units of work: one frozen dataclass per kind of run, whose config hash names its result
in the store, and the units a grid asks for.

A unit's hash (`ebnb.identity.config_hash`) covers what changes how it is trained, and nothing it
merely records: its kind name (`ebnb.identity.kind`, fixed here, not the class name), and its
fields but those at their defaults and those marked `RECORDED`. A stored unit that recorded
more (a dense run's masks at more P, snapshots at more episodes; a mask trace's or sweep's P)
serves a request for less (`ebnb.identity.covers`; published views are narrowed to the request
by `ebnb.experiments.step.narrowed`). Test episodes are part of the hash: a result holds the
mean test return, and the mean of the first n of 2n episodes cannot be read off it."""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium

from ebnb import controls, sweep
from ebnb.config import DQNConfig, dqn_config
from ebnb.experiments.grids import Grid, check_eb_exploit, check_grid, check_rewind
from ebnb.identity import RECORDED, kind

CONVERGED = -1  # prune_episode of a winning ticket: drawn where early stopping would fire


@kind("dense")
@dataclass(frozen=True)
class DenseRun:
    """One unpruned agent trained for `episodes` without early stopping (PROTOCOL: shared runs),
    recording its state at `snapshot_episodes` and its masks at every P of `fractions` every
    `mask_every` episodes (that series names the result: experiment 1's tables are over it)."""

    dqn: DQNConfig
    seed: int
    episodes: int
    snapshot_episodes: tuple[int, ...] = field(metadata=RECORDED)
    fractions: tuple[float, ...] = field(metadata=RECORDED)
    mask_every: int
    test_episodes: int


@kind("ticket")
@dataclass(frozen=True)
class TicketRun:
    """A sparse agent from a dense run: mask from theta at `prune_episode` (CONVERGED: where
    early stopping would fire), then retrained from m * theta_0 or finetuned from m * theta_e."""

    dense: DenseRun
    fraction: float
    prune_episode: int
    mode: str  # "retrain" | "finetune"


class _OfTicket:
    """A unit trained like its field `ticket`: the same dense run, P, prune episode and mode."""

    @property
    def dense(self) -> DenseRun:
        return self.ticket.dense

    @property
    def fraction(self) -> float:
        return self.ticket.fraction

    @property
    def prune_episode(self) -> int:
        return self.ticket.prune_episode

    @property
    def mode(self) -> str:
        return self.ticket.mode


@kind("control")
@dataclass(frozen=True)
class ControlRun(_OfTicket):
    """A control of `ticket` (`ebnb.controls`): the same dense run, P, prune episode and mode,
    with the mask or the start weights changed as `control` says."""

    ticket: TicketRun
    control: str


@kind("eb_exploit")
@dataclass(frozen=True)
class EBExploitRun:
    """EB Exploit (thesis algorithm 3.1) for one seed and P."""

    dqn: DQNConfig
    seed: int
    fraction: float
    xi: float
    window: int
    rewind: bool  # False: finetune from m * theta_now (default); True: retrain from m * theta_0
    episodes: int
    test_episodes: int


def _fractions_of_dense(unit) -> None:
    """Default a unit's `fractions` to its dense run's."""
    if not unit.fractions:
        object.__setattr__(unit, "fractions", unit.dense.fractions)


@kind("mask_trace")
@dataclass(frozen=True)
class MaskTrace:
    """A dense run trained again (early stopping off, to its cap), recording the global-L1 mask
    of every P of `fractions` (default: the dense run's) after every episode, with epsilon and
    counters (the search of every EB Exploit setting: `ebnb.sweep`)."""

    dense: DenseRun
    fractions: tuple[float, ...] = field(default=(), metadata=RECORDED)

    __post_init__ = _fractions_of_dense


@kind("eb_sweep")
@dataclass(frozen=True)
class EBSweepRun:
    """EB Exploit of one seed at every setting of a sweep grid (`ebnb.sweep.grid`) and every P
    of `fractions` (default: its dense run's): the search read off the dense run's `MaskTrace`,
    the rest the `SweepTicket` at the episode found, finetuned, or retrained with `rewind`
    (as `EBExploitRun.rewind`; at its default False it leaves the hash as it was)."""

    dense: DenseRun
    xis: tuple[float, ...]
    windows: tuple[int, ...]
    detectors: tuple[str, ...]
    starts: tuple[str, ...]
    fractions: tuple[float, ...] = field(default=(), metadata=RECORDED)
    rewind: bool = False  # False: the ticket finetuned from m * theta_e; True: retrained from m * theta_0

    __post_init__ = _fractions_of_dense


@kind("sweep_ticket")
@dataclass(frozen=True)
class SweepTicket(_OfTicket):
    """The rest of an EB Exploit run of the sweep: the finetune (or, with rewind, retrain)
    `ticket`, at any episode (not only a snapshot's), trained and tested as the ticket, its
    result also recording the whole run's env steps and gradient updates (the search's
    included)."""

    ticket: TicketRun


@kind("imp_ticket")
@dataclass(frozen=True)
class IMPTicket:
    """A winning ticket by iterative magnitude pruning (Frankle & Carbin; thesis algorithm
    2.1), round len(fractions): round 1 is the one-shot winning ticket at P = fractions[0]
    (mask from the dense run at convergence); round k draws its mask at P = fractions[k - 1]
    (of all weights) from round k - 1's retrained final network, among the weights round
    k - 1 kept, and retrains m * theta_0 with a fresh agent state, as a winning ticket does."""

    dense: DenseRun
    fractions: tuple[float, ...]  # P after each round, increasing; this unit is the last round's ticket

    def __post_init__(self):
        fractions = self.fractions
        if not isinstance(fractions, tuple) or not fractions or list(fractions) != sorted(set(fractions)):
            raise ValueError(f"IMPTicket: fractions must be a non-empty increasing tuple of P, got {fractions!r}")

    @property
    def fraction(self) -> float:
        return self.fractions[-1]

    @property
    def prune_episode(self) -> int:
        return CONVERGED

    @property
    def mode(self) -> str:
        return "retrain"

    @property
    def previous(self) -> IMPTicket | None:
        """The round before, whose final network this round's mask is drawn from (None: round 1)."""
        return IMPTicket(self.dense, self.fractions[:-1]) if len(self.fractions) > 1 else None


def run_config(env: str, g: Grid) -> DQNConfig:
    """The DQN config the agents of `g` train with on `env`: the thesis' (`ebnb.config.dqn_config`)
    capped at `g.episodes`, with the overrides `g.dqn`."""
    return dqn_config(env, **dict(check_grid(g).dqn), max_episodes=g.episodes)


def dense_units(env: str, g: Grid) -> list[DenseRun]:
    """The dense run of each seed of `g` (its DQN config: `run_config`)."""
    cfg = run_config(env, g)
    return [
        DenseRun(
            cfg, seed, g.episodes, tuple(sorted(set(g.prune_episodes))), g.fractions, g.mask_every, g.test_episodes
        )
        for seed in g.seeds
    ]


def ticket_units(env: str, g: Grid, mode: str, prune_episodes, fractions=None) -> list[TicketRun]:
    """The tickets of `mode` of each dense run of `g`, P of `fractions` (default `g.fractions`)
    and episode of `prune_episodes`."""
    return [
        TicketRun(d, p, e, mode)
        for d in dense_units(env, g)
        for p in (g.fractions if fractions is None else fractions)
        for e in prune_episodes
    ]


def imp_units(env: str, g: Grid) -> list[IMPTicket]:
    """With `g.imp`, every round of iterative magnitude pruning of each dense run of `g`, one
    per P of `g.fractions + g.sparse_fractions` in increasing order (round k ends at the k-th),
    then at each of `g.sparse_fractions` the one-shot winning ticket (a round 1 there: the
    reference the grid's winning tickets give at its own P); else none."""
    if not g.imp:
        return []
    rounds = tuple(sorted(g.fractions + g.sparse_fractions))
    dense = dense_units(env, g)
    chains = [IMPTicket(d, rounds[:k]) for d in dense for k in range(1, len(rounds) + 1)]
    return chains + [IMPTicket(d, (p,)) for d in dense for p in sorted(g.sparse_fractions)]


def control_units(env: str, g: Grid, mode: str) -> list[ControlRun]:
    """Every control of `g.controls` that applies to `mode`, of each ticket of `mode` at
    `g.control_episodes` and P in `g.fractions + g.sparse_fractions`."""
    tickets = ticket_units(env, g, mode, g.control_episodes, g.fractions + g.sparse_fractions)
    return [ControlRun(t, c) for t in tickets for c in g.controls if mode in controls.CONTROLS[c]]


def eb_exploit_units(env: str, g: Grid, xi: float, window: int, rewind: bool) -> list[EBExploitRun]:
    """EB Exploit of each seed and P of `g`."""
    check_eb_exploit(xi, window, rewind)
    cfg = run_config(env, g)
    return [
        EBExploitRun(cfg, s, p, float(xi), window, bool(rewind), g.episodes, g.test_episodes)
        for s in g.seeds
        for p in g.fractions
    ]


def sweep_units(env: str, g: Grid, sweep_grid: dict, rewind: bool = False) -> list[EBSweepRun]:
    """EB Exploit swept over `sweep_grid` (`ebnb.sweep.grid`'s arguments) for each dense run of
    `g`, each ticket finetuned, or retrained from m * theta_0 with `rewind`."""
    check_rewind(rewind)
    return [EBSweepRun(d, **sweep.grid(**sweep_grid), rewind=rewind) for d in dense_units(env, g)]


def env_id(unit) -> str:
    """The gymnasium id a unit trains on."""
    return getattr(unit, "dense", unit).dqn.env_id


def expected_steps(unit) -> float:
    """A unit's a-priori cost in agent-steps, for scheduling only (longest first): its
    episodes times the env's episode step limit. Episodes: the cap for dense, EB Exploit and
    retrained units; for a finetuned one, the cap minus its prune episode (a network pruned
    late has mostly learned already); higher P breaks ties."""
    if isinstance(unit, (TicketRun, ControlRun, SweepTicket, IMPTicket)):
        start = max(unit.prune_episode, 0) if unit.mode == "finetune" else 0
        episodes = unit.dense.episodes - start + unit.fraction
    else:
        episodes = float(getattr(unit, "dense", unit).episodes)
    return episodes * (gymnasium.spec(env_id(unit)).max_episode_steps or 1000)


def longest_first(units) -> list:
    """`units` by `expected_steps`, longest first (stable)."""
    return sorted(units, key=expected_steps, reverse=True)


def dense_inputs(units) -> list:
    """The units of other steps that `units` read (tickets, controls, IMP tickets and the sweep
    read their dense run), in order."""
    readers = (TicketRun, ControlRun, SweepTicket, EBSweepRun, IMPTicket)
    return list(dict.fromkeys(u.dense for u in units if isinstance(u, readers)))
