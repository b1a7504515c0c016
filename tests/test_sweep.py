"""EB Exploit, swept: the trace is the dense run, detection from it is EB Exploit's search,
the continuation is the finetune ticket, tickets start at any episode, costs are the counters,
and stored ticket results are left as they are."""

from __future__ import annotations

import itertools
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ebnb import analysis, compute, experiments, masks, sweep
from ebnb.agent import fresh_agent
from ebnb.cost import POST_PRUNE_COLUMNS
from ebnb.experiments import EBSweepRun, MaskTrace, SweepTicket, TicketRun
from ebnb.stats import holm as ebnb_holm
from ebnb.store import Store, config_hash

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# Epsilon halves per episode (0.5**7 < 0.01: at its floor from episode 7), learning from 64
# transitions: a short CartPole run searches, finds tickets, and has Adam state when it prunes.
FAST = {"eps_decay": 0.5, "learning_starts": 64}
GRID = dict(seeds=(0, 1), fractions=(0.5, 0.8), prune_episodes=(4, 9), episodes=16, test_episodes=2)
EB_SETTINGS = [(0.9, 1), (0.2, 2), (0.1, 1), (0.05, 3), (0.01, 1)]  # (xi, window): found early, later, never
SWEEP_GRID = {"xis": sorted({x for x, _ in EB_SETTINGS}), "windows": sorted({w for _, w in EB_SETTINGS})}
TICKET_COLUMNS = [
    "seed",
    "P",
    "prune_episode",
    "length",
    "converged",
    "test_return",
    "state_sha256",
]  # and, for a ticket:
POST_PRUNE = list(POST_PRUNE_COLUMNS)


def _files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """On one store, with fast exploration: experiment 3's tickets (and what the store holds
    of them), then the sweep, EB Exploit at several (xi, window), and the finetune TicketRuns
    at the episodes where EB Exploit found its tickets."""
    store, g = Store(tmp_path_factory.mktemp("sweep")), experiments.grid("quick", **GRID, dqn=FAST)
    finetuned = experiments.finetune("cartpole", g, store)
    tickets_before = _files(store.root / "ticket")
    results = experiments.eb_exploit_sweep("cartpole", g, store, **SWEEP_GRID)
    tickets_after = _files(store.root / "ticket")
    exploit = {
        (xi, window): experiments.eb_exploit("cartpole", g, store, xi=xi, window=window) for xi, window in EB_SETTINGS
    }
    read_off = {
        window: experiments.eb_exploit_read_off("cartpole", g, store, None, SWEEP_GRID["xis"], window)
        for window in SWEEP_GRID["windows"]
    }
    baseline = experiments.baseline("cartpole", g, store)
    cfg = experiments.run_config("cartpole", g)
    dense = {d.seed: d for d in experiments.dense_units("cartpole", g)}
    found = pd.concat(exploit.values()).query("found")
    at_eb = tuple(dict.fromkeys(TicketRun(dense[r.seed], r.P, r.prune_episode, "finetune") for r in found.itertuples()))
    experiments.step.step_results(
        store, experiments.Step("at EB", "ticket", at_eb, experiments.tickets.compute_tickets), None, False
    )
    return SimpleNamespace(
        store=store,
        g=g,
        cfg=cfg,
        results=results,
        exploit=exploit,
        dense=dense,
        finetuned=finetuned,
        tickets_before=tickets_before,
        tickets_after=tickets_after,
        read_off=read_off,
        baseline=baseline,
    )


def test_the_trace_is_the_dense_run(made):
    """The trace's episode lengths, epsilon, and its masks at the dense run's mask episodes
    equal the stored dense run's: re-running a dense run gives the same run."""
    for dense in made.dense.values():
        trace, run = made.store.load("mask_trace", MaskTrace(dense)), made.store.load("dense", dense)
        log, episodes = trace["log"], run["episodes"]
        assert log["episode"].tolist() == list(range(made.g.episodes + 1))
        assert np.diff(log["env_steps"]).tolist() == episodes["length"].tolist()
        assert log["epsilon"].iloc[:-1].tolist() == episodes["epsilon"].tolist(), (
            "epsilon after e = at the start of e+1"
        )
        for fraction in made.g.fractions:
            assert np.array_equal(
                trace["masks"][f"P{fraction}"][run["masks"]["episodes"]], run["masks"][f"P{fraction}"]
            )


def _sweep_tickets(made) -> list[SweepTicket]:
    """The sweep tickets that the sweep's found runs continue as."""
    found = made.results[made.results.found]
    return list(
        dict.fromkeys(
            SweepTicket(TicketRun(made.dense[r.seed], r.P, r.prune_episode, "finetune")) for r in found.itertuples()
        )
    )


def test_gradient_updates_follow_from_env_steps_and_the_config(made):
    """updates(T) = #{t <= T: t % train_freq == 0 and t >= learning_starts}, in the trace after
    every episode and in every sweep ticket's final counters (the formula docs/protocol.md gives)."""
    cfg = made.cfg

    def formula(steps):
        steps = np.asarray(steps)
        return np.maximum(0, steps // cfg.train_freq - (cfg.learning_starts - 1) // cfg.train_freq)

    for dense in made.dense.values():
        log = made.store.load("mask_trace", MaskTrace(dense))["log"]
        assert log["updates"].tolist() == formula(log["env_steps"]).tolist()
        assert log["updates"].iloc[-1] > 0
    tickets = pd.concat([made.store.load("sweep_ticket", t)["result"] for t in _sweep_tickets(made)])
    assert len(tickets) and tickets["updates"].tolist() == formula(tickets["env_steps"]).tolist()


def test_tickets_keep_their_schema_and_the_sweep_stores_its_own(made):
    """The sweep leaves experiment 3's stored tickets byte for byte as they were and adds no
    ticket; its continuations are `SweepTicket`s (one per distinct seed, P and episode, shared
    by the settings that draw it), whose results are a ticket's columns plus env steps and
    updates (lifetime, not post-prune)."""
    assert sorted(made.finetuned.columns) == sorted(TICKET_COLUMNS + POST_PRUNE)
    assert made.tickets_after == made.tickets_before
    stored = sorted(p.name for p in (made.store.root / "sweep_ticket").iterdir())
    assert stored == sorted(made.store.path("sweep_ticket", t).name for t in _sweep_tickets(made))
    result = made.store.load("sweep_ticket", _sweep_tickets(made)[0])["result"]
    assert sorted(result.columns) == sorted(TICKET_COLUMNS + ["env_steps", "updates"])


def test_detection_from_the_trace_is_eb_exploits_search_and_the_rest_its_finetune(made):
    """The exactness anchor: for every (xi, window), seed and P, the thesis setting of the sweep
    (last two masks, after exploration) finds its ticket where EB Exploit does (or neither
    does), with EB Exploit's test return, total length and convergence."""
    thesis = made.results[(made.results.detector == "last_two") & (made.results.start == "after_exploration")]
    found = 0
    for (xi, window), table in made.exploit.items():
        swept = thesis[(thesis.xi == xi) & (thesis.window == window)]
        merged = table.merge(swept, on=["seed", "P"], suffixes=("", "_swept"), validate="one_to_one")
        assert len(merged) == len(table) == 4
        assert merged["found"].tolist() == merged["found_swept"].tolist(), (xi, window)
        assert merged["prune_episode"].tolist() == merged["prune_episode_swept"].tolist(), (xi, window)
        assert (merged["search_length"] + merged["finetune_length"]).tolist() == merged["episodes"].tolist()
        assert merged["test_return"].tolist() == merged["test_return_swept"].tolist()
        assert merged["converged"].tolist() == merged["converged_swept"].tolist()
        found += int(merged["found"].sum())
    assert 0 < found < 4 * len(made.exploit), "some settings find tickets, some do not"
    assert {9, 8} <= set(thesis.loc[thesis.found, "prune_episode"]), "at a snapshot episode (9) and between (8)"


def test_eb_exploit_read_off_the_traces_is_eb_exploit_run_at_each_xi(made):
    """`eb_exploit_read_off` (profile small_xi's EB Exploit) is EB Exploit's table at every
    (xi, window), column for column and dtype for dtype (but the state hash), without
    training a ticket the sweep had not; its verdicts per xi are EB Exploit's own."""
    for (xi, window), table in made.exploit.items():
        read = made.read_off[window]
        assert read.columns[0] == "xi" and sorted(read.xi.unique()) == SWEEP_GRID["xis"]
        read = read[read.xi == xi].drop(columns="xi").sort_values(["seed", "P"]).reset_index(drop=True)
        ran = table.drop(columns="state_sha256").sort_values(["seed", "P"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(read, ran)
        by_xi = analysis.eb_exploit_by_xi(made.read_off[window], made.baseline)
        pd.testing.assert_frame_equal(
            by_xi[by_xi.xi == xi].drop(columns="xi").reset_index(drop=True),
            analysis.eb_exploit_summary(table, made.baseline),
        )
    assert len(list((made.store.root / "sweep_ticket").iterdir())) == len(_sweep_tickets(made)), "no ticket trained"


def test_profile_small_xi_publishes_eb_exploit_read_off_on_cartpole_only():
    """The side profile small_xi joins the published results with the units
    `eb_exploit_read_off` reads at `SMALL_XIS` (the full grid's dense runs and one sweep of
    EB Exploit's own setting per seed), on CartPole only."""
    from ebnb import publish
    from ebnb.experiments.exploit_sweep import sweep_step

    g = experiments.grid("small_xi")
    assert g == experiments.grid("full") and experiments.SMALL_XIS == (0.001, 0.002, 0.005, 0.01)
    steps = publish.SIDE_PROFILES["small_xi"].steps("cartpole", None, None)
    expected = sweep_step(
        "cartpole",
        g,
        {
            "xis": list(experiments.SMALL_XIS),
            "windows": [2],
            "detectors": ["last_two"],
            "starts": ["after_exploration"],
        },
    )
    assert [s.units for s in steps] == [experiments.dense_step("cartpole", g).units, expected.units]
    assert publish.SIDE_PROFILES["small_xi"].steps("acrobot", None, None) == []


def test_eb_exploit_is_the_finetune_ticket_at_its_episode_and_the_sweeps_ticket(made):
    """EB Exploit's final state is the finetune TicketRun's at its (seed, P, prune episode),
    and the sweep's SweepTicket's there, whether that episode is one the dense run snapshots
    (9) or not."""
    episodes = set()
    for table in made.exploit.values():
        for row in table[table.found].itertuples():
            ticket = TicketRun(made.dense[row.seed], row.P, row.prune_episode, "finetune")
            for kind, unit in (("ticket", ticket), ("sweep_ticket", SweepTicket(ticket))):
                result = made.store.load(kind, unit)["result"].iloc[0]
                assert (result["state_sha256"], result["length"]) == (row.state_sha256, row.finetune_length), kind
            episodes.add(row.prune_episode)
    assert 9 in episodes and episodes - set(made.g.prune_episodes)


def test_a_ticket_between_snapshots_starts_from_the_dense_runs_state_there(made):
    """Resuming the dense run from an earlier snapshot (or theta_0) to an episode it snapshots
    reproduces that snapshot bit for bit."""
    snapshots = made.store.load("dense", made.dense[0])["snapshots"]
    stored = experiments.state_sha256(experiments.states.state_from(snapshots, "e9"))
    for dropped in (("e9",), ("e9", "e4")):
        fewer = {k: v for k, v in snapshots.items() if k.split(".")[0] not in dropped + ("converged",)}
        assert experiments.state_sha256(experiments.tickets.dense_state_at(made.cfg, fewer, 9)) == stored, dropped


def test_costs_are_the_runs_counters_relative_to_the_unpruned_run(made):
    """Not found: the unpruned run's cost (relative 1) and return; found: the sweep ticket's
    lifetime counters (the dense run's up to pruning plus the finetune's)."""
    for row in made.results.itertuples():
        log = made.store.load("mask_trace", MaskTrace(made.dense[row.seed]))["log"]
        baseline = made.store.load("dense", made.dense[row.seed])["baseline"].iloc[0]
        stop = int(baseline["converged_episode"])
        unpruned = log.loc[stop, ["env_steps", "updates"]].to_numpy()
        assert row.relative_env_steps == row.env_steps / unpruned[0]
        assert row.relative_updates == row.updates / unpruned[1]
        if not row.found:
            assert (row.env_steps, row.updates, row.episodes) == (*unpruned, stop)
            assert row.test_return == baseline["test_return"]
            continue
        ticket = SweepTicket(TicketRun(made.dense[row.seed], row.P, row.prune_episode, "finetune"))
        result = made.store.load("sweep_ticket", ticket)["result"].iloc[0]
        assert (row.env_steps, row.updates, row.episodes) == (
            result["env_steps"],
            result["updates"],
            row.prune_episode + result["length"],
        )
        assert row.env_steps >= log.loc[row.prune_episode, "env_steps"] + result["length"], "at least a step an episode"


# ---- detection rules on made-up distances -------------------------------------------------------


def _table(pairs: dict[tuple[int, int], float], default: float = 1.0):
    return lambda i, j: pairs.get((min(i, j), max(i, j)), default)


def test_last_two_compares_each_mask_with_the_one_before():
    distance = _table({(3, 5): 0.05, (5, 7): 0.05})
    assert sweep.detect(distance, 1, 20, 2, 0.1, "last_two") == 5
    assert sweep.detect(distance, 1, 4, 2, 0.1, "last_two") is None, "stopped before the mask that settles"
    assert sweep.detect(distance, 1, 5, 2, 0.1, "last_two") == 5, "a ticket at the stopping episode counts"
    assert sweep.detect(distance, 1, 20, 2, 0.05, "last_two") is None, "strictly below xi"
    assert sweep.detect(distance, None, 20, 2, 0.1, "last_two") is None, "no search without a start"


def test_the_queue_needs_every_pair_among_the_last_five_masks_below_xi():
    """Issue 13's rule: all 10 distances among the last 5 masks drawn below xi; the newest
    close to each older one (You et al.'s code) is not enough."""

    def close(*episodes):
        return {pair: 0.01 for pair in itertools.combinations(episodes, 2)}

    assert sweep.detect(_table(close(1, 3, 5, 7, 9)), 1, 20, 2, 0.1, "queue") == 9
    newest = {(i, 9): 0.01 for i in (1, 3, 5, 7)}
    assert sweep.detect(_table(newest), 1, 20, 2, 0.1, "queue") is None, "the older masks among themselves count"
    assert sweep.detect(_table({**close(1, 3, 5, 7, 9), (3, 5): 0.5}), 1, 20, 2, 0.1, "queue") is None
    assert (
        sweep.detect(_table({**close(1, 3, 5, 7, 9), (1, 3): 0.5, **close(3, 5, 7, 9, 11)}), 1, 20, 2, 0.1, "queue")
        == 11
    ), "the oldest mask leaves the queue"
    assert sweep.detect(_table({}, default=0.0), 1, 20, 2, 0.1, "queue") == 9, "never before 5 masks"
    assert sweep.detect(_table(close(1, 3, 5, 7, 9)), 1, 8, 2, 0.1, "queue") is None, "stopped before the 5th"
    assert sweep.detect(_table({}, default=0.1), 1, 20, 2, 0.1, "queue") is None, "strictly below xi"


def test_search_starts():
    epsilon = np.array([1.0, 0.5, 0.1, 0.01, 0.01])
    assert sweep.search_start(epsilon, 0.01, "after_exploration") == 3
    assert sweep.search_start(epsilon[:3], 0.01, "after_exploration") is None
    assert sweep.search_start(epsilon, 0.01, "episode_1") == 1


def test_distances_count_differing_weights_over_all_weights():
    masks = np.packbits(np.array([[1, 1, 1, 0, 1, 1, 1, 1, 1, 0], [1, 0, 1, 0, 1, 1, 1, 1, 0, 1]], dtype=bool), axis=-1)
    assert sweep.distances(masks, 10)(0, 1) == 0.3


# ---- the sweep grid, its units and its analysis -------------------------------------------------


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("xis", [0.0], "xis must be a number in the open interval"),
        ("xis", [], "xis: must be a non-empty list"),
        ("windows", [0], "windows must be an integer >= 1"),
        ("windows", [2, 2], "windows: .* names a value twice"),
        ("detectors", ["pairwise"], "detectors: unknown 'pairwise'; allowed: last_two, queue"),
        ("starts", ["episode_0"], "starts: unknown 'episode_0'; allowed: after_exploration, episode_1"),
        ("xis", 0.1, "xis: must be a non-empty list"),
    ],
)
def test_bad_sweep_grids_are_refused_before_anything_runs(tmp_path, name, value, message):
    store = Store(tmp_path / "store")
    with pytest.raises(ValueError, match=message):
        experiments.eb_exploit_sweep("cartpole", experiments.grid("quick"), store, **{name: value})
    assert not store.root.exists()


def test_the_sweep_has_one_unit_per_seed_and_a_grid_change_keeps_traces(made):
    g = made.g
    units = experiments.steps("cartpole", g)["eb_exploit sweep"].units
    assert [u.dense.seed for u in units] == list(g.seeds) and all(isinstance(u, EBSweepRun) for u in units)
    assert units[0].xis == sweep.DEFAULTS["xis"] and len(sweep.settings(sweep.grid())) == 48
    narrower = experiments.steps("cartpole", g, xis=[0.1])["eb_exploit sweep"].units
    assert {MaskTrace(u.dense) for u in narrower} == {MaskTrace(u.dense) for u in units}, "traces are per dense run"


def test_the_summary_gives_each_settings_iqm_saving():
    rng = np.random.default_rng(0)
    baseline = pd.DataFrame({"test_return": 200 + rng.normal(0, 1, 10)})
    rows = []
    for xi, shift, cost in ((0.1, 0.0, 0.5), (0.2, -50.0, 0.3), (0.05, 0.0, 1.0)):
        for seed, noise in enumerate(rng.normal(0, 1, 10)):
            rows.append(
                {
                    "seed": seed,
                    "P": 0.2,
                    "xi": xi,
                    "window": 1,
                    "detector": "last_two",
                    "start": "episode_1",
                    "found": True,
                    "prune_episode": 5,
                    "test_return": 200 + shift + noise,
                    "relative_env_steps": cost,
                    "relative_updates": cost,
                }
            )
    summary = analysis.eb_exploit_sweep_summary(pd.DataFrame(rows), baseline).set_index("xi")
    assert summary["saving"].to_dict() == pytest.approx({0.05: 0.0, 0.1: 0.5, 0.2: 0.7})
    assert summary.loc[0.2, "test_return"] == pytest.approx(150, abs=1.5)


# ---- the sweep's statistics (no training: small tables) -------------------------------------------


def _sweep_table(costs: dict, drawn: dict, seeds: int = 10, fraction: float = 0.2):
    """A sweep table: per setting (xi, window) its relative cost per seed (`costs`, both
    env steps and updates) and its prune episode per seed (`drawn`, -1: none drawn)."""
    rows = []
    for (xi, window), cost in costs.items():
        for seed in range(seeds):
            episode = drawn[(xi, window)][seed]
            rows.append(
                {
                    "seed": seed,
                    "P": fraction,
                    "xi": xi,
                    "window": window,
                    "detector": "last_two",
                    "start": "episode_1",
                    "found": episode >= 0,
                    "prune_episode": episode,
                    "test_return": 200.0 - seed % 2,
                    "relative_env_steps": cost[seed],
                    "relative_updates": cost[seed] + 0.01,
                }
            )
    return pd.DataFrame(rows)


def test_settings_with_the_same_prune_schedule_are_one_hypothesis():
    rng = np.random.default_rng(0)
    same = list(rng.integers(5, 50, 10))
    costs = {
        (0.1, 1): rng.uniform(0.5, 0.9, 10),
        (0.2, 1): rng.uniform(0.5, 0.9, 10),
        (0.1, 2): rng.uniform(0.5, 0.9, 10),
    }
    costs[(0.2, 1)] = costs[(0.1, 1)]  # the same tickets: the same costs
    drawn = {(0.1, 1): same, (0.2, 1): same, (0.1, 2): same[:-1] + [-1]}
    table = sweep.schedules(_sweep_table(costs, drawn))
    assert table.set_index(["xi", "window"])["schedule"].to_dict() == {(0.1, 1): 0, (0.1, 2): 1, (0.2, 1): 0}
    assert table.set_index(["xi", "window"])["merged"].to_dict() == {(0.1, 1): 2, (0.1, 2): 1, (0.2, 1): 2}
    saved = sweep.savings(
        _sweep_table(costs, drawn), pd.DataFrame({"seed": range(10), "test_return": [200.0] * 10}), "CartPole-v0"
    )
    assert len(saved) == 2 and saved[["xi", "window", "merged"]].values.tolist() == [[0.1, 1, 2], [0.1, 2, 1]]


def test_a_saving_is_the_paired_seed_mean_with_its_t_interval_and_holm_over_the_schedules():
    from scipy import stats

    rng = np.random.default_rng(1)
    costs = {
        (0.1, 1): 1 - rng.normal(0.2, 0.05, 10),  # saves 20%: clear
        (0.2, 1): 1 - rng.normal(0.03, 0.1, 10),  # about nothing
        (0.05, 1): 1 - rng.normal(0.05, 0.05, 10),
    }
    drawn = {key: list(range(5 + i, 15 + i)) for i, key in enumerate(costs)}
    baseline = pd.DataFrame({"seed": range(10), "test_return": [200.0, 199.0] * 5})
    saved = sweep.savings(_sweep_table(costs, drawn), baseline, "CartPole-v0").set_index("xi")
    raw = {}
    for (xi, _), cost in costs.items():
        saving = 1 - cost
        row = saved.loc[xi]
        assert row["saving_env_steps"] == pytest.approx(saving.mean())
        low, high = stats.t.interval(0.95, 9, loc=saving.mean(), scale=stats.sem(saving))
        assert (row["saving_env_steps_low"], row["saving_env_steps_high"]) == pytest.approx((low, high))
        raw[xi] = stats.ttest_1samp(saving, 0.0, alternative="greater").pvalue
        assert row["p_env_steps"] == pytest.approx(raw[xi])
        assert row["saving_updates"] == pytest.approx(saving.mean() - 0.01)
        assert row["return_difference"] == pytest.approx(0.0), "paired by seed with the unpruned return"
    ordered = sorted(raw, key=raw.get)
    holm = {xi: min(1.0, max(raw[x] * (3 - i) for i, x in enumerate(ordered[: ordered.index(xi) + 1]))) for xi in raw}
    assert saved["p_env_steps_holm"].to_dict() == pytest.approx(holm)
    assert saved.loc[0.1, "saves_env_steps"] and not saved.loc[0.2, "saves_env_steps"]
    assert (saved["p_env_steps_holm"] > saved["p_env_steps"]).any(), "adjusted: larger than the raw p-values"


@pytest.mark.parametrize(("env_id", "worst"), [("CartPole-v0", 0.0), ("Acrobot-v1", -500.0)])
def test_the_return_is_judged_by_criterion_1s_ni_test_paired_by_seed_with_holm_over_the_schedules(env_id, worst):
    """Per distinct schedule: the paired NI test at criterion 1's margin (5% of the distance
    from the unpruned mean to the worst return) and the paired test of 'worse', against
    scipy's one-sample t-tests of the differences; Holm over the schedules; three states."""
    from scipy import stats

    rng = np.random.default_rng(2)
    unpruned = -100.0 + rng.normal(0, 5, 10) if worst else 180.0 + rng.normal(0, 5, 10)
    baseline = pd.DataFrame({"seed": range(10), "test_return": unpruned})
    margin = 0.05 * (unpruned.mean() - worst)
    shifts = {
        0.1: rng.normal(0, 0.05 * margin, 10),
        0.2: rng.normal(-4 * margin, 0.1 * margin, 10),
        0.05: -0.5 * margin + 2 * margin * np.array([-1.0, 1.0] * 5),
    }
    costs = {(xi, 1): np.full(10, 0.9) for xi in shifts}
    drawn = {key: list(range(5 + i, 15 + i)) for i, key in enumerate(costs)}
    table = _sweep_table(costs, drawn)
    table["test_return"] = [unpruned[seed] + shifts[xi][seed] for xi, seed in zip(table.xi, table.seed)]
    saved = sweep.savings(table, baseline, env_id).set_index("xi")
    assert saved["return_margin"].tolist() == pytest.approx([margin] * 3)
    raw_ni = {xi: stats.ttest_1samp(d, -margin, alternative="greater").pvalue for xi, d in shifts.items()}
    raw_worse = {xi: stats.ttest_1samp(d, 0.0, alternative="less").pvalue for xi, d in shifts.items()}
    assert saved["p_return_ni"].to_dict() == pytest.approx(raw_ni, rel=1e-9)
    assert saved["p_return_worse"].to_dict() == pytest.approx(raw_worse, rel=1e-9)
    low = {xi: d.mean() - stats.t.ppf(0.95, 9) * stats.sem(d) for xi, d in shifts.items()}
    assert saved["return_bound"].to_dict() == pytest.approx(low, rel=1e-9)
    for column in ("p_return_ni", "p_return_worse"):
        holm = ebnb_holm(saved[column].to_numpy())
        assert saved[f"{column}_holm"].tolist() == pytest.approx(holm.tolist())
        assert (saved[f"{column}_holm"] >= saved[column]).all() and (saved[f"{column}_holm"] > saved[column]).any()
    assert saved["return_state"].to_dict() == {
        0.1: analysis.SHOWN_NI,
        0.2: analysis.SHOWN_WORSE,
        0.05: analysis.NEITHER,
    }


def test_a_schedule_that_never_prunes_returns_the_unpruned_return_and_is_shown_non_inferior():
    baseline = pd.DataFrame({"seed": range(10), "test_return": 150.0 + np.arange(10.0)})
    table = _sweep_table({(0.1, 1): np.ones(10)}, {(0.1, 1): [-1] * 10})
    table["test_return"] = baseline.test_return.to_numpy()
    row = sweep.savings(table, baseline, "CartPole-v0").iloc[0]
    assert row.return_difference == 0.0 and row.p_return_ni == 0.0 and row.p_return_worse == 1.0
    assert row.return_state == analysis.SHOWN_NI


def test_hypotheses_are_the_top_k_distinct_schedules_per_p_that_save():
    saved = pd.DataFrame(
        {
            "P": [0.2] * 4 + [0.8] * 2,
            "xi": [0.02, 0.05, 0.1, 0.2, 0.02, 0.05],
            "window": 1,
            "detector": "queue",
            "start": "episode_1",
            "saving_env_steps": [0.1, 0.3, 0.2, 0.3, -0.1, 0.0],
            "saving_updates": [0.1, 0.2, 0.2, 0.25, -0.1, 0.0],
        }
    )
    assert sweep.hypotheses(saved, k=2) == [(0.2, 0.2, 1, "queue", "episode_1"), (0.2, 0.05, 1, "queue", "episode_1")]
    assert len(sweep.hypotheses(saved, k=3)) == 3, "P=0.8 saves nothing: no hypothesis there"


def test_the_published_sweep_merged_and_adjusted():
    """The full profile: CartPole's 192 (P, setting) cells are 87 distinct schedules, Acrobot's
    160; no saving survives Holm; Acrobot's one raw p < 0.05 (P=0.2, xi=0.02, window 1, last
    two, after exploration) is its only hypothesis."""
    import tempfile

    from ebnb.store import Store

    g, published = experiments.grid("full"), experiments.published_results()
    with tempfile.TemporaryDirectory() as directory:
        store = Store(directory)
        saved = {
            env: sweep.savings(
                experiments.eb_exploit_sweep(env, g, store, published),
                experiments.baseline(env, g, store, published),
                env_id,
            )
            for env, env_id in (("cartpole", "CartPole-v0"), ("acrobot", "Acrobot-v1"))
        }
    assert {env: len(table) for env, table in saved.items()} == {"cartpole": 87, "acrobot": 160}
    assert not any(table["saves_env_steps"].any() or table["saves_updates"].any() for table in saved.values())
    assert (saved["acrobot"]["p_env_steps"] < 0.05).sum() == 1
    assert sweep.hypotheses(saved["acrobot"]) == [(0.2, 0.02, 1, "last_two", "after_exploration")]
    assert len(sweep.hypotheses(saved["cartpole"])) == 7


def test_the_published_sweep_is_one_small_table_read_without_training(made, tmp_path):
    """What `ebnb.published` holds of the sweep is its result table (not the traces), and a
    store that lacks everything reads the sweep from it, training and storing nothing."""
    from ebnb import published

    step = experiments.steps("cartpole", made.g, **SWEEP_GRID)["eb_exploit sweep"]
    record = {"commit": "0" * 40, "lock_sha256": "ab" * 32}
    published.write(
        tmp_path / "results",
        {"CartPole-v0": {step.name: experiments.collect(made.store, step, None)}},
        {"grid": "tiny"},
        record,
    )
    empty = Store(tmp_path / "empty")
    again = experiments.eb_exploit_sweep(
        "cartpole", made.g, empty, published.Published(tmp_path / "results"), **SWEEP_GRID
    )
    pd.testing.assert_frame_equal(again, made.results)
    assert not empty.root.exists()
    assert [p.name for p in (tmp_path / "results" / "CartPole-v0").iterdir()] == ["eb_exploit_sweep.parquet"]


@pytest.mark.parametrize("scheduler", ["inline", "local"])
def test_the_scheduler_plans_the_sweep_tickets_from_the_traces_and_runs_them_as_shards(made, tmp_path, scheduler):
    """`pipeline.py compute` stores the traces, then (planned from them) the sweep tickets as
    shards of their own, on every worker at once (the tickets are most of the sweep's work),
    then the sweep: the same bytes as computing it in a notebook."""
    work = compute.plan(["cartpole"], ["eb_exploit sweep"], made.g, **SWEEP_GRID)
    reports = list(compute.run(tmp_path, work, scheduler, shard_size=256, workers=2))
    tickets = [r for _, name, r in reports if name == "sweep tickets"]
    expected = sorted(p.name for p in (made.store.root / "sweep_ticket").iterdir())
    names = sorted({name for _, name, _ in reports})
    assert names == ["dense runs", "eb_exploit sweep", "mask traces", "sweep tickets"]
    assert sorted(config_hash(u) for r in tickets for u in r.shard.units) == expected
    assert len(tickets) == (2 if scheduler == "local" else 1), "a shard per worker, though all fit in one"
    if scheduler == "local":
        spans = sorted((r.cost.started, r.cost.started + r.cost.wall_s) for r in tickets)
        assert any(b[0] < a[1] for a, b in itertools.pairwise(spans)), "two ticket shards ran at once"
    sweep_step = work[-1][1]
    assert sweep_step.name == "eb_exploit sweep"
    for unit in sweep_step.units:
        ours, theirs = (Store(root).path("eb_sweep", unit) for root in (tmp_path, made.store.root))
        assert (ours / "manifest.json").read_bytes() == (theirs / "manifest.json").read_bytes()


def test_a_rerun_plans_the_same_stage_so_it_cuts_the_same_shards_and_resumes_their_checkpoints(made, tmp_path):
    """With one sweep ticket missing (as after a crash), the stage still lists every ticket the
    searches draw, stored or not: its shards, and so their checkpoints' names, stay the same."""
    step = experiments.steps("cartpole", made.g, **SWEEP_GRID)["eb_exploit sweep"]
    assert list(experiments.input_stages(made.store, step)) == [], "all stored: nothing to plan"
    partial = Store(tmp_path / "store")
    shutil.copytree(made.store.root, partial.root)
    stored = sorted((partial.root / "sweep_ticket").iterdir())
    shutil.rmtree(stored[0])
    stage = next(experiments.input_stages(partial, step))
    assert stage.name == "sweep tickets" and sorted(config_hash(u) for u in stage.units) == [p.name for p in stored]


def test_a_sweep_at_chosen_settings_gives_the_full_sweeps_rows_for_them(made):
    """The fresh seeds' run: each hypothesis swept alone gives exactly the rows the whole sweep
    has for that (P, setting), sharing its stored tickets; asked not to compute, it says None
    for what is not stored."""
    found = made.results[made.results.found]

    def settings_of(rows):
        return list(dict.fromkeys((r.P, r.xi, r.window, r.detector, r.start) for r in rows.itertuples()))

    drawn = settings_of(found)[:2]
    never = [
        s
        for s in settings_of(made.results.groupby(["P", *sweep.SETTING]).filter(lambda g: not g.found.any()))
        if s not in drawn
    ][:1]
    chosen = drawn + never
    assert len(chosen) == 3
    assert experiments.eb_exploit_sweep_at("cartpole", made.g, made.store, None, chosen, compute=False) is None
    tickets_before = _files(made.store.root / "sweep_ticket")
    at = experiments.eb_exploit_sweep_at("cartpole", made.g, made.store, None, chosen)
    assert _files(made.store.root / "sweep_ticket") == tickets_before, "the whole sweep's tickets, shared"
    keys = ["P", *sweep.SETTING, "seed"]
    expected = pd.concat(
        [
            made.results[
                (made.results.P == p)
                & (made.results.xi == x)
                & (made.results.window == w)
                & (made.results.detector == d)
                & (made.results.start == s)
            ]
            for p, x, w, d, s in chosen
        ]
    )
    pd.testing.assert_frame_equal(
        at.sort_values(keys).reset_index(drop=True), expected.sort_values(keys).reset_index(drop=True)
    )
    assert experiments.eb_exploit_sweep_at("cartpole", made.g, made.store, None, chosen, compute=False) is not None


# ---- the sweep with rewind (issue 31's variant 2 at the sweep's best settings) -----------------

REWIND_SETTINGS = [
    (0.9, 1),
    (0.2, 2),
    (0.01, 1),
]  # (xi, window) of EB Exploit with rewind=True: found early, later, never


@pytest.fixture(scope="module")
def rewound(made):
    """On `made`'s store: the sweep with rewind=True, EB Exploit with rewind=True at
    `REWIND_SETTINGS` and read off the traces so, and the explicit retrain TicketRuns at the
    episodes the sweep's searches draw."""
    store, g = made.store, made.g
    sweep_tickets_before = _files(store.root / "sweep_ticket")
    results = experiments.eb_exploit_sweep("cartpole", g, store, rewind=True, **SWEEP_GRID)
    exploit = {
        (xi, window): experiments.eb_exploit("cartpole", g, store, xi=xi, window=window, rewind=True)
        for xi, window in REWIND_SETTINGS
    }
    read_off = {
        window: experiments.eb_exploit_read_off("cartpole", g, store, None, SWEEP_GRID["xis"], window, rewind=True)
        for window in sorted({w for _, w in REWIND_SETTINGS})
    }
    found = results[results.found]
    retrains = tuple(
        dict.fromkeys(TicketRun(made.dense[r.seed], r.P, r.prune_episode, "retrain") for r in found.itertuples())
    )
    experiments.step.step_results(
        store, experiments.Step("retrain at EB", "ticket", retrains, experiments.tickets.compute_tickets), None, False
    )
    return SimpleNamespace(
        results=results, exploit=exploit, read_off=read_off, retrains=retrains, sweep_tickets=sweep_tickets_before
    )


def test_rewind_is_a_parameter_of_the_sweep_whose_units_and_tickets_never_share_the_finetunes_keys(made, rewound):
    """EBSweepRun's rewind at its default (False) leaves its identity, and so every stored and
    published sweep's key, as it was; rewind=True names other sweep units, whose tickets are
    retrain SweepTickets, stored beside the finetune's (which stay byte for byte) under keys of
    their own, apart from experiment 2's retrain TicketRuns too."""
    from ebnb.identity import identity_json

    finetune = experiments.dense_units("cartpole", made.g)[0]
    plain, rewind = (EBSweepRun(finetune, **sweep.grid(**SWEEP_GRID), rewind=r) for r in (False, True))
    assert "rewind" not in identity_json(plain) and "rewind" in identity_json(rewind)
    assert config_hash(plain) == config_hash(EBSweepRun(finetune, **sweep.grid(**SWEEP_GRID))) != config_hash(rewind)
    step = experiments.exploit_sweep.sweep_step("cartpole", made.g, SWEEP_GRID, rewind=True)
    assert all(u.rewind for u in step.units) and not any(
        u.rewind for u in experiments.exploit_sweep.sweep_step("cartpole", made.g, SWEEP_GRID).units
    )
    ticket = TicketRun(finetune, 0.5, 8, "finetune")
    keys = {config_hash(t) for t in (SweepTicket(ticket), SweepTicket(TicketRun(finetune, 0.5, 8, "retrain")))}
    assert len(keys | {config_hash(TicketRun(finetune, 0.5, 8, "retrain"))}) == 3
    after = _files(made.store.root / "sweep_ticket")
    assert {k: v for k, v in after.items() if k in rewound.sweep_tickets} == rewound.sweep_tickets
    stored = {p.name for p in (made.store.root / "sweep_ticket").iterdir()}
    ours = {made.store.path("sweep_ticket", SweepTicket(t)).name for t in rewound.retrains}
    assert ours and ours <= stored and not ours & {p.split("/")[0] for p in rewound.sweep_tickets}
    with pytest.raises(ValueError, match="rewind: must be True"):
        experiments.eb_exploit_sweep("cartpole", made.g, made.store, rewind="yes", **SWEEP_GRID)


def test_the_rewind_sweep_searches_as_the_finetunes_and_retrains_the_mask_from_theta_0(made, rewound):
    """With rewind the searches are the finetune sweep's (same tickets drawn where), and each
    ticket found is experiment 2's retrain from m * theta_0 of the trace's mask at that episode,
    bit for bit: the explicit retrain TicketRun's final state, length, convergence and test
    return; its costs are the trace's up to pruning plus the retrain's own."""
    keys = ["seed", "P", *sweep.SETTING]
    finetune = made.results.sort_values(keys).reset_index(drop=True)
    rewind = rewound.results.sort_values(keys).reset_index(drop=True)
    assert rewind[["found", "prune_episode"]].equals(finetune[["found", "prune_episode"]])
    assert rewind.found.any() and not rewind.found.all()
    for row in rewind[rewind.found].itertuples():
        ticket = TicketRun(made.dense[row.seed], row.P, row.prune_episode, "retrain")
        explicit = made.store.load("ticket", ticket)["result"].iloc[0]
        swept = made.store.load("sweep_ticket", SweepTicket(ticket))["result"].iloc[0]
        for name in ("state_sha256", "length", "converged", "test_return"):
            assert swept[name] == explicit[name], name
        assert (row.test_return, row.converged, row.episodes) == (
            explicit["test_return"],
            explicit["converged"],
            row.prune_episode + explicit["length"],
        )
        trace = made.store.load("mask_trace", MaskTrace(made.dense[row.seed]))
        log = trace["log"]
        assert (row.env_steps, row.updates) == (
            log.loc[row.prune_episode, "env_steps"] + explicit["post_prune_env_steps"],
            log.loc[row.prune_episode, "updates"] + explicit["post_prune_updates"],
        )
        snapshots = made.store.load("dense", made.dense[row.seed])["snapshots"]
        start = experiments.ticket_start(
            SweepTicket(ticket), experiments.tickets.dense_state_at(made.cfg, snapshots, row.prune_episode)
        )
        n_weights = int(trace["masks"]["n_weights"])
        mask = masks.unpack(trace["masks"][f"P{row.P}"][row.prune_episode], n_weights)
        assert np.array_equal(np.concatenate([m.ravel() for m in start.mask]), mask), "the trace's mask"
        fresh = fresh_agent(made.cfg, row.seed)  # theta_0: the dense run's start
        for kept, w, w0 in zip(start.mask, start.params[::2], fresh.params[::2]):
            assert np.array_equal(w, np.where(kept, w0, 0)), "m * theta_0"
        assert (start.transitions, start.updates, start.epsilon) == (0, 0, 1.0), "a fresh agent state"


def test_eb_exploit_with_rewind_read_off_the_traces_is_eb_exploit_run_with_rewind(made, rewound):
    """The exactness anchor with rewind: `eb_exploit_read_off(rewind=True)` is EB Exploit run
    online with rewind=True, column for column (but the state hash, which the sweep ticket's
    result holds and equals), at every (xi, window) tried."""
    for (xi, window), table in rewound.exploit.items():
        read = rewound.read_off[window]
        read = read[read.xi == xi].drop(columns="xi").sort_values(["seed", "P"]).reset_index(drop=True)
        ran = table.sort_values(["seed", "P"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(read, ran.drop(columns="state_sha256"))
        for row in ran[ran.found].itertuples():
            ticket = SweepTicket(TicketRun(made.dense[row.seed], row.P, row.prune_episode, "retrain"))
            assert made.store.load("sweep_ticket", ticket)["result"]["state_sha256"].iloc[0] == row.state_sha256
    found = sum(int(t.found.sum()) for t in rewound.exploit.values())
    assert 0 < found < 4 * len(rewound.exploit), "some settings find tickets, some do not"


def test_a_rewind_sweep_resumes_a_missing_ticket_to_the_same_bytes(made, rewound, tmp_path):
    """With one rewind sweep ticket and the sweep units missing (as after a crash), the sweep
    plans the same stage, recomputes that ticket to the same bytes, and gives the same table."""
    partial = Store(tmp_path / "store")
    shutil.copytree(made.store.root, partial.root)
    ticket = SweepTicket(rewound.retrains[0])
    before = (partial.path("sweep_ticket", ticket) / "manifest.json").read_bytes()
    shutil.rmtree(partial.path("sweep_ticket", ticket))
    shutil.rmtree(partial.root / "eb_sweep")
    step = experiments.exploit_sweep.sweep_step("cartpole", made.g, SWEEP_GRID, rewind=True)
    stage = next(experiments.input_stages(partial, step))
    assert stage.name == "sweep tickets" and ticket in stage.units
    again = experiments.eb_exploit_sweep("cartpole", made.g, partial, rewind=True, **SWEEP_GRID)
    assert (partial.path("sweep_ticket", ticket) / "manifest.json").read_bytes() == before
    pd.testing.assert_frame_equal(again, rewound.results)


def test_the_hypotheses_verdicts_are_eb_exploits_per_hypothesis_with_the_sweeps_savings(made, rewound):
    """`analysis.eb_exploit_hypotheses` on one setting per P is `eb_exploit_summary` of those rows
    (Holm over P = over the hypotheses) with `eb_exploit_power`'s detectable difference, beside
    `sweep.savings`' saving and return verdicts for them."""
    chosen = [(p, 0.2, 2, "last_two", "after_exploration") for p in made.g.fractions]
    for table in (made.results, rewound.results):
        rows = sweep.rows_at(table, chosen)
        assert len(rows) == len(made.g.seeds) * len(chosen)
        verdicts = analysis.eb_exploit_hypotheses(rows, made.baseline, "CartPole-v0")
        as_exploit = sweep.as_eb_exploit(rows)
        summary = analysis.eb_exploit_summary(as_exploit, made.baseline)
        pd.testing.assert_frame_equal(verdicts[summary.columns], summary)
        power = analysis.eb_exploit_power(as_exploit, made.baseline)
        assert verdicts["mde"].tolist() == power["mde"].tolist()
        saved = sweep.savings(rows, made.baseline, "CartPole-v0")
        assert verdicts["return_state"].tolist() == saved["return_state"].tolist()
        assert verdicts["saving_state"].tolist() == [
            "shown to save" if s else "not shown to save" for s in saved["saves_env_steps"]
        ]


def test_profile_sweep_rewind_is_the_hypotheses_with_rewind_on_seeds_0_to_29(monkeypatch):
    """The side profile sweep_rewind publishes notebook 06's hypotheses with rewind=True on the
    seeds they were chosen on and on sweep_fresh's (its dense runs are theirs, by config), and
    is undefined without the full sweep; sweep_fresh's steps stay the finetune's."""
    from ebnb import side_profiles

    chosen = [(0.2, 0.1, 2, "queue", "episode_1"), (0.8, 0.05, 1, "last_two", "after_exploration")]
    monkeypatch.setattr(experiments, "sweep_hypotheses", lambda env, store, current: chosen)
    g = experiments.grid("sweep_rewind")
    assert g.seeds == tuple(range(30)) and g == experiments.grid("full", seeds=list(range(30)))
    steps = side_profiles.SIDE_PROFILES["sweep_rewind"].steps("cartpole", None, None)
    assert [s.units for s in steps] == [s.units for s in experiments.sweep_at_steps("cartpole", g, chosen, True)]
    assert [s.name for s in steps] == ["dense runs", "eb_exploit sweep", "eb_exploit sweep"]
    assert all(u.rewind for s in steps[1:] for u in s.units)
    dense = set(steps[0].units)
    assert dense == set(experiments.dense_units("cartpole", experiments.grid("full"))) | set(
        experiments.dense_units("cartpole", experiments.grid("sweep_fresh"))
    )
    fresh = side_profiles.SIDE_PROFILES["sweep_fresh"].steps("cartpole", None, None)
    assert not any(u.rewind for s in fresh[1:] for u in s.units)
    monkeypatch.setattr(experiments, "sweep_hypotheses", lambda env, store, current: None)
    assert side_profiles.SIDE_PROFILES["sweep_rewind"].steps("cartpole", None, None) is None
