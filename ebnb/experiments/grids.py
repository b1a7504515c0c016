"""What an experiment covers: the grid of seeds, P and prune episodes, its named profiles,
EB Exploit's parameters, and the names a run's outputs go by."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

from ebnb import controls, sweep
from ebnb.config import DQNConfig, check_fraction, check_positive_int, check_seed
from ebnb.identity import kind

SET_BY_GRID = {"env_id": "the env", "max_episodes": "the grid's episodes"}  # DQN fields that are no override


@kind("grid")
@dataclass(frozen=True)
class Grid:
    """What the experiments cover, and how their agents train; `PROFILES["full"]` is the thesis."""

    seeds: tuple[int, ...] = tuple(range(10))
    fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    prune_episodes: tuple[int, ...] = (5, 20, 30, 40, 50, 75, 100, 130, 180, 250, 400, 500)
    episodes: int = 500  # dense-run length, and the cap of every training phase
    test_episodes: int = 100
    mask_every: int = 2  # experiment 1 draws a mask every this many episodes
    # beyond the thesis (notebook 05): controls of each ticket and sparser P, at these of prune_episodes
    control_episodes: tuple[int, ...] = (5, 30, 100, 250)
    sparse_fractions: tuple[float, ...] = ()  # P beyond the thesis' (profile full_sparse: 0.9, 0.95, 0.98)
    controls: tuple[str, ...] = tuple(controls.CONTROLS)
    # overrides of the thesis' DQN config (`ebnb.config.dqn_config`), as sorted (field, value)
    # pairs, e.g. (("arithmetic", "torch"), ("device", "cuda")): they change every unit's config
    dqn: tuple[tuple[str, object], ...] = ()
    # winning tickets by iterative magnitude pruning too, one round per P of fractions (profile imp; issue 31's variant 7)
    imp: bool = False

    def __repr__(self) -> str:  # a field of LATER_FIELDS only when set: a grid prints as it did before it existed
        shown = [f for f in fields(self) if f.name not in LATER_FIELDS or getattr(self, f.name)]
        return f"Grid({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"

    def __post_init__(self):
        check_dqn_overrides(self.dqn)
        if not isinstance(self.imp, bool):
            raise ValueError(f"imp: must be True (IMP winning tickets too) or False, got {self.imp!r}")
        for name in ("seeds", "fractions", "prune_episodes", "control_episodes", "sparse_fractions", "controls"):
            values = getattr(self, name)
            if not isinstance(values, tuple):
                example = getattr(Grid, name)[0]
                raise ValueError(f"{name}: must be a list of values, e.g. {name}=[{example!r}], got {values!r}")
            if not values and name in ("seeds", "fractions", "prune_episodes"):
                raise ValueError(f"{name}: the grid needs at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: {list(values)} names a value twice")
        for seed in self.seeds:
            check_seed("seeds", seed)
        for fraction in self.fractions:
            check_fraction("fractions", fraction)
        check_positive_int("episodes", self.episodes)
        check_positive_int("test_episodes", self.test_episodes)
        check_positive_int("mask_every", self.mask_every)
        for episode in self.prune_episodes:
            if isinstance(episode, bool) or not isinstance(episode, int) or not 1 <= episode <= self.episodes:
                raise ValueError(
                    f"prune_episodes: each must be an integer in [1, episodes={self.episodes}], got {episode!r}"
                )
        for episode in self.control_episodes:
            if episode not in self.prune_episodes:
                raise ValueError(
                    f"control_episodes: each must be one of prune_episodes {list(self.prune_episodes)}, got {episode!r}"
                )
        for fraction in self.sparse_fractions:
            check_fraction("sparse_fractions", fraction)
            if fraction in self.fractions:
                raise ValueError(f"sparse_fractions: {fraction} is already in fractions {list(self.fractions)}")
        for control in self.controls:
            if control not in controls.CONTROLS:
                raise ValueError(f"controls: unknown {control!r}; allowed: {', '.join(controls.CONTROLS)}")


LATER_FIELDS = ("dqn", "imp")  # Grid fields added after results were published: shown and published only when set


def check_dqn_overrides(pairs) -> None:
    """`Grid.dqn`: sorted (name, value) pairs of distinct `DQNConfig` fields, those the grid
    sets itself (`SET_BY_GRID`) excepted; else a ValueError saying what is allowed. The values
    are checked where a config is made of them (`units.run_config`)."""
    allowed = [f.name for f in fields(DQNConfig) if f.name not in SET_BY_GRID]
    if not isinstance(pairs, tuple) or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        raise ValueError(f"dqn: must be (name, value) pairs of DQN config fields, got {pairs!r}")
    for name, _ in pairs:
        if name in SET_BY_GRID:
            raise ValueError(f"dqn: {name} is set by {SET_BY_GRID[name]}, not overridden")
        if name not in allowed:
            raise ValueError(f"dqn: {name!r} is not a DQN config field; allowed: {', '.join(allowed)}")
    names = [name for name, _ in pairs]
    if names != sorted(set(names)):
        raise ValueError(f"dqn: the pairs must be sorted by name, each name once, got {names}")


def dqn_pairs(overrides: dict) -> tuple[tuple[str, object], ...]:
    """`Grid.dqn` of DQN config overrides by name: sorted, lists as tuples, and without those
    that equal a field's default for every env (e.g. device "cpu"), so that stating a default
    names the same grid (and run) as leaving it out."""
    defaults = {f.name: f.default for f in fields(DQNConfig) if f.default is not MISSING}
    as_tuple = {name: tuple(v) if isinstance(v, list) else v for name, v in overrides.items()}
    return tuple(sorted((name, v) for name, v in as_tuple.items() if name not in defaults or v != defaults[name]))


def check_grid(g) -> Grid:
    """`g` if it is a Grid, else ValueError."""
    if not isinstance(g, Grid):
        raise ValueError(f"grid: expected a Grid (from experiments.grid(profile, ...)), got {type(g).__name__}")
    return g


PROFILES = {
    "full": Grid(),
    "quick": Grid(
        seeds=(0, 1),
        fractions=(0.2, 0.8),
        prune_episodes=(2, 6),
        episodes=10,
        test_episodes=5,
        control_episodes=(6,),
        sparse_fractions=(0.95,),
    ),
    "full15": Grid(seeds=tuple(range(15))),  # the thesis grid with 15 seeds (as Vischer et al. 2022); 0-9 shared
    "full_sparse": Grid(sparse_fractions=(0.9, 0.95, 0.98)),  # the full profile plus sparser tickets and controls
    # fresh seeds for the sweep's hypotheses only (`exploit_sweep.eb_exploit_sweep_at`, notebook 06's compute_fresh)
    "sweep_fresh": Grid(seeds=sweep.FRESH_SEEDS),
    # the full grid, for notebook 04's EB Exploit at xi below the sweep's (`SMALL_XIS`; CartPole only)
    "small_xi": Grid(),
    # the full grid, for notebook 04's EB Exploit with rewind=True (retrain from m * theta_0, the thesis' algorithm box)
    "rewind": Grid(),
    # the full grid with time limits as terminal (no bootstrap at truncation), as gym-era DQN did: notebooks 01-04
    "gym_terminal": Grid(dqn=(("truncation_is_terminal", True),)),
    # CartPole's deciding cells at 100 seeds (issue 31's variant 5; notebooks 02 and 03's "Verdicts at 100 seeds"):
    # P = 0.2 and 0.8 pruned at episodes 20 and 100, their winning tickets and the unpruned runs; 0-9 are full's
    "powered": Grid(
        seeds=tuple(range(100)), fractions=(0.2, 0.8), prune_episodes=(20, 100), control_episodes=(20, 100)
    ),
    # the full grid with Acrobot's observations divided by their bounds (velocities by 4*pi and 9*pi: every input
    # in [-1, 1]), the dynamics unchanged (issue 31's variant 6): notebooks 01-03; Acrobot only (CartPole's
    # velocities are unbounded: refused)
    "acrobot_scaled": Grid(dqn=(("scaled_observations", True),)),
    # notebook 06's hypotheses with rewind=True (each ticket retrained from m * theta_0): on the seeds they were chosen
    # on (0-9, the full profile's) and on the fresh ones (`sweep.FRESH_SEEDS`, sweep_fresh's); its dense runs are theirs
    "sweep_rewind": Grid(seeds=tuple(range(10)) + sweep.FRESH_SEEDS),
    # the full grid with winning tickets by iterative magnitude pruning beside the one-shot ones (issue 31's
    # variant 7; notebooks 02 and 03's "Criterion 3 against IMP winning tickets")
    "imp": Grid(imp=True),
    # it with a fifth round at P = 0.9 (full_sparse's first P) and the one-shot winning ticket there
    "imp_sparse": Grid(imp=True, sparse_fractions=(0.9,)),
}


EB_EXPLOIT_DEFAULTS = {"xi": 0.1, "window": 2, "rewind": False}  # thesis 3.5; see check_eb_exploit


# profile small_xi: notebook 04's EB Exploit at xi below the sweep's 0.02, read off the dense runs' mask traces
# (`ebnb.experiments.eb_exploit_read_off`); CartPole only
SMALL_XIS = (0.001, 0.002, 0.005, 0.01)


def check_eb_exploit(xi, window, rewind) -> None:
    """EB Exploit's parameters: 0 < xi < 1, window >= 1, rewind True/False; else ValueError."""
    check_fraction("xi", xi)
    check_positive_int("window", window)
    check_rewind(rewind)


def check_rewind(rewind) -> None:
    """EB Exploit's (and its sweep's) `rewind`: True or False; else ValueError."""
    if not isinstance(rewind, bool):
        raise ValueError(f"rewind: must be True (retrain from theta_0) or False (finetune), got {rewind!r}")


def _changes(profile: str, g: Grid, eb_exploit: dict) -> list[tuple[str, object]]:
    """(name, value) of each setting of `g` and EB Exploit that differs from the profile."""
    base, defaults = PROFILES[profile], {**EB_EXPLOIT_DEFAULTS, **sweep.DEFAULTS}
    changed = [
        (f.name, getattr(g, f.name))
        for f in fields(Grid)
        if f.name != "dqn" and getattr(g, f.name) != getattr(base, f.name)
    ]
    changed += [pair for pair in g.dqn if pair not in base.dqn]  # each DQN override by its own name
    as_given = {name: tuple(value) if isinstance(value, list) else value for name, value in eb_exploit.items()}
    return changed + [(name, value) for name, value in as_given.items() if value != defaults[name]]


def run_name(profile: str, g: Grid, **eb_exploit) -> str:
    """Name of a run's outputs folder: the profile, then each setting (of the grid, EB Exploit
    and its sweep) that differs from it, e.g. ``full``, ``quick``, ``full-seeds=0_1-xi=0.05``."""

    def text(value):
        return "_".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return "-".join([profile] + [f"{name}={text(value)}" for name, value in _changes(profile, g, eb_exploit)])


def figure_note(profile: str, g: Grid, **eb_exploit) -> str | None:
    """What a figure shows if not the thesis (full profile as it is): None, or e.g.
    'quick profile, not the thesis grid' / 'full profile with seeds=[0, 1]: not the thesis grid'."""
    changes = _changes(profile, g, eb_exploit)
    if profile == "full" and not changes:
        return None
    settings = ", ".join(f"{name}={list(v) if isinstance(v, tuple) else v}" for name, v in changes)
    return f"{profile} profile{' with ' + settings if settings else ''}: not the thesis grid"


def grid(profile: str = "quick", **overrides) -> Grid:
    """The grid of a profile ('full' = the thesis, 'quick'), with fields overridden by name
    (None keeps the profile's value); `dqn`: a dict of DQN config overrides (`dqn_pairs`) on top
    of the profile's own.
    Overriding prune_episodes alone keeps those of the profile's control_episodes that are
    still prune episodes."""
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown {profile!r}; allowed: {', '.join(PROFILES)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    names = {f.name for f in fields(Grid)}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"{min(unknown)}: not a grid parameter; allowed: {', '.join(sorted(names))}")
    base = PROFILES[profile]
    as_tuple = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in overrides.items() if k != "dqn"}
    if "dqn" in overrides:
        if not isinstance(overrides["dqn"], dict):
            raise ValueError(
                f"dqn: must be a dict of DQN config fields, e.g. {{'lr': 0.001}}, got {overrides['dqn']!r}"
            )
        as_tuple["dqn"] = dqn_pairs({**dict(base.dqn), **overrides["dqn"]})
    if isinstance(as_tuple.get("prune_episodes"), tuple) and "control_episodes" not in as_tuple:
        # the profile's control episodes that remain prune episodes (none: no controls)
        as_tuple["control_episodes"] = tuple(e for e in base.control_episodes if e in as_tuple["prune_episodes"])
    return Grid(**{**{f.name: getattr(base, f.name) for f in fields(Grid)}, **as_tuple})
