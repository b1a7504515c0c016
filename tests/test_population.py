"""The batched engine: equal to an independent reference, batch-invariant, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebnb import masks, qnet, reference_dqn
from ebnb.agent import fresh_agent
from ebnb.batch import AgentArrays
from ebnb.config import ACROBOT, CARTPOLE
from ebnb.envs import reset_state
from ebnb.optim import StackedAdam
from ebnb.population import Population


def run(cfg, agents, **kwargs):
    return Population(cfg, agents, **kwargs).run()


def record_actions(population: Population) -> list:
    """Wrap the population's env so every step's actions are kept (in batch order); the
    population then steps in Python (tests/test_loop.py holds the compiled loop to that path)."""
    population.compiled = False
    actions = []
    step = population.env.step

    def recording_step(action):
        actions.append((population.ids.copy(), np.array(action)))
        return step(action)

    population.env.step = recording_step
    return actions


def assert_same_actions(engine_actions: list, reference_actions: list[int]) -> None:
    """Agent 0's recorded actions equal the reference's, step for step. Fails naming the first
    differing step: pytest's own report on two lists of thousands of ints takes minutes."""
    engine = [int(a[0]) for _, a in engine_actions]
    first = next((i for i, (e, r) in enumerate(zip(engine, reference_actions)) if e != r), None)
    assert first is None, f"step {first}: action {engine[first]}, the reference's {reference_actions[first]}"
    assert len(engine) == len(reference_actions), f"{len(engine)} steps, the reference's {len(reference_actions)}"


@pytest.mark.usefixtures("one_thread")  # one agent: torch's second thread only waits (8x slower on a busy machine)
@pytest.mark.parametrize("cfg, episodes", [(CARTPOLE, 100), (ACROBOT, 10)], ids=["cartpole", "acrobot"])
def test_engine_matches_reference_dqn(cfg, episodes):
    """Same actions, returns and epsilon as the independent reference, and the same parameters
    within 1e-5, over more than 3,000 steps.

    Both run in float64. In float32 the reference's own arithmetic (torch's BLAS kernels) rounds
    differently per instruction set, and RL's feedback loop turns a last-bit difference into a
    different action within a few thousand steps; tests/test_kernel.py holds the float32 update
    to torch's within 1e-5 per step, and the golden hashes hold its bits.
    """
    dtype, atol = torch.float64, 1e-5
    seed = 5
    reference_actions: list[int] = []
    reference = reference_dqn.train(cfg, seed, episodes, record_actions=reference_actions, dtype=dtype)
    assert reference["steps"] >= 3000, "the comparison must cover at least 3,000 steps"

    agent = fresh_agent(cfg, seed, dtype=torch.empty(0, dtype=dtype).numpy().dtype)
    population = Population(cfg, [agent], early_stop=False, max_episodes=episodes)
    engine_actions = record_actions(population)
    result = population.run()

    assert_same_actions(engine_actions, reference_actions)
    assert result.episodes["return"].tolist() == reference["returns"]
    final = result.final[0]
    reference_params = [p.detach() for p in reference["q_network"].parameters()]
    for layer in range(len(reference_params) // 2):
        weight, bias = reference_params[2 * layer], reference_params[2 * layer + 1]
        np.testing.assert_allclose(final.params[2 * layer], weight.numpy(), atol=atol, rtol=0)
        np.testing.assert_allclose(final.params[2 * layer + 1][:, 0], bias.numpy(), atol=atol, rtol=0)
    assert final.epsilon == reference["epsilon"]
    assert final.transitions == reference["steps"]


@pytest.mark.parametrize("chunk_size", [64, 3])
def test_agent_alone_equals_agent_in_population_bitwise(chunk_size):
    """Seed 3 alone and at position 5 of 16: same returns for 50 episodes, identical parameters
    (whether the update runs all 16 agents in one chunk or in chunks of 3)."""
    cfg = CARTPOLE
    alone = run(cfg, [fresh_agent(cfg, 3)], early_stop=False, max_episodes=50)
    seeds = [11, 12, 13, 14, 15, 3, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]
    stop_at = {agent: 20 + 2 * agent for agent in range(16) if agent != 5}  # others leave early: compaction

    def stop_some(population, ends):
        leaving = [a for a, e in zip(ends.agents, ends.episodes) if stop_at.get(int(a)) == e]
        if leaving:
            population.stop(leaving)

    together = run(
        cfg,
        [fresh_agent(cfg, s) for s in seeds],
        early_stop=False,
        max_episodes=50,
        callback=stop_some,
        chunk_size=chunk_size,
    )
    mine = together.episodes[together.episodes.agent == 5]
    assert len(mine) == 50
    assert mine["return"].tolist() == alone.episodes["return"].tolist()
    for a, b in zip(alone.final[0].to_arrays().items(), together.final[5].to_arrays().items()):
        assert a[0] == b[0] and np.array_equal(a[1], b[1]), a[0]
    assert set(together.agents.stop_reason) == {"callback", "max_episodes"}


def test_agents_out_of_phase_each_equal_their_run_alone():
    """Agents resumed from snapshots at different transition counts (and Adam steps) train on
    their own schedule: batched, each gives bitwise what it gives alone."""
    cfg = CARTPOLE
    snapshots = {}

    def keep(population, ends):
        for agent, episode in zip(ends.agents, ends.episodes):
            if episode in (9, 14, 17):
                snapshots[(int(agent), int(episode))] = population.snapshot([agent])[0]

    run(cfg, [fresh_agent(cfg, 0), fresh_agent(cfg, 1)], early_stop=False, max_episodes=17, callback=keep)
    starts = [snapshots[(0, 9)], snapshots[(1, 14)], fresh_agent(cfg, 7), snapshots[(0, 17)]]
    assert len({s.transitions % cfg.train_freq for s in starts}) > 1, "the test needs agents out of phase"
    together = run(cfg, starts, early_stop=False, max_episodes=12)
    for position, start in enumerate(starts):
        alone = run(cfg, [start], early_stop=False, max_episodes=12)
        assert alone.final[0].adam_steps == together.final[position].adam_steps
        for layer, param in enumerate(alone.final[0].params):
            assert np.array_equal(param, together.final[position].params[layer])


def test_same_config_twice_gives_identical_results():
    cfg = ACROBOT
    first = run(cfg, [fresh_agent(cfg, s) for s in (0, 1)], early_stop=False, max_episodes=3)
    second = run(cfg, [fresh_agent(cfg, s) for s in (0, 1)], early_stop=False, max_episodes=3)
    assert first.episodes.equals(second.episodes)
    for a, b in zip(first.final, second.final):
        assert all(np.array_equal(x, y) for x, y in zip(a.params, b.params))


def test_stacked_gradients_and_adam_equal_independent_optimisers():
    """One loss (sum of each agent's mean TD loss) and one StackedAdam over K agents equal K
    separate networks with K torch.optim.Adam, including agents that skip steps."""
    torch.manual_seed(0)
    sizes, n_agents, batch = [4, 16, 16, 2], 5, 8
    stacked = qnet.stack([qnet.init_params(sizes, seed) for seed in range(n_agents)])
    optimizer = StackedAdam(stacked, lr=0.01)
    singles = [[p[k].detach().clone().requires_grad_(True) for p in stacked] for k in range(n_agents)]
    adams = [torch.optim.Adam(params, lr=0.01) for params in singles]

    everyone = slice(0, n_agents)
    schedule = [everyone, torch.tensor([0, 2, 4]), torch.tensor([1]), everyone, torch.tensor([3, 4]), slice(1, 3)]
    for agents in schedule:
        chosen = list(range(n_agents))[agents] if isinstance(agents, slice) else agents.tolist()
        x = torch.randn(len(chosen), batch, sizes[0])
        y = torch.randn(len(chosen), batch)
        params = [p.detach()[chosen].requires_grad_(True) for p in stacked]
        loss = (qnet.q_values(params, x.transpose(1, 2))[:, 0] - y).square().mean(1).sum()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            optimizer.step(list(grads), agents)
        for j, k in enumerate(chosen):
            own = qnet.q_values([p[None] for p in singles[k]], x[j : j + 1].transpose(1, 2))[0, 0]
            single_loss = torch.nn.functional.mse_loss(own, y[j])
            adams[k].zero_grad()
            single_loss.backward()
            for g, p in zip(grads, singles[k]):
                torch.testing.assert_close(g[j], p.grad, atol=1e-6, rtol=1e-5)
            adams[k].step()
    for k in range(n_agents):
        for p_stacked, p_single in zip(stacked, singles[k]):
            torch.testing.assert_close(p_stacked[k].detach(), p_single.detach(), atol=1e-6, rtol=1e-5)
    assert optimizer.steps.tolist() == [3, 4, 4, 3, 4]


def test_reset_transition_is_never_stored():
    """Every stored transition is a real one: consecutive slots chain within an episode, and an
    episode's last next_obs is its true final observation, never the next episode's start."""
    cfg = CARTPOLE.replace(buffer_size=5000)
    result = run(cfg, [fresh_agent(cfg, 4)], early_stop=False, max_episodes=12)
    state, lengths = result.final[0], result.episodes["length"].to_numpy()
    assert state.transitions == lengths.sum()
    replay = state.replay
    ends = np.cumsum(lengths) - 1
    for episode, end in enumerate(ends):
        start = end - lengths[episode] + 1
        assert np.array_equal(replay["obs"][start], reset_state(cfg.env_id, 4, episode).astype(np.float32))
        assert np.array_equal(replay["next_obs"][start:end], replay["obs"][start + 1 : end + 1])
        x, theta = replay["next_obs"][end][0], replay["next_obs"][end][2]
        terminal = abs(x) > 2.4 or abs(theta) > 12 * 2 * np.pi / 360
        assert terminal == bool(replay["done"][end]), "last transition must end in the true final state"
        if lengths[episode] < 200:
            assert terminal


def test_pruned_weights_stay_exactly_zero_in_online_and_target_networks():
    cfg = CARTPOLE.replace(learning_starts=32)
    agents = []
    for seed, fraction in [(0, 0.2), (1, 0.5), (2, 0.8)]:
        agent = fresh_agent(cfg, seed)
        mask = masks.global_magnitude_masks([torch.from_numpy(w[None]) for w in agent.params[0::2]], fraction)
        agents.append(agent.pruned([m[0].numpy() for m in mask]))
    agents.append(fresh_agent(cfg, 3))  # a dense agent in the same batch stays dense
    population = Population(cfg, agents, early_stop=False, max_episodes=15)
    population.compiled = False  # to see every update (the compiled loop runs the same kernel)
    learn, checks = population._learn, []

    def checked_learn(positions):
        learn(positions)
        for position, agent in enumerate(population.ids):
            if agents[agent].mask is None:
                continue
            for layer, keep in enumerate(agents[agent].mask):
                for tensors in (population.params, population.target):
                    assert not tensors[2 * layer][position][~torch.from_numpy(keep)].any()
        checks.append(len(positions))

    population._learn = checked_learn
    result = population.run()
    assert sum(checks) > 100
    dense = result.final[3]
    assert all((w != 0).all() for w in dense.params[0::2])


def test_set_mask_prunes_mid_run_and_keeps_the_rest_of_the_state():
    cfg = CARTPOLE
    seen = {}

    def prune_at_episode_5(population, ends):
        for agent, episode in zip(ends.agents, ends.episodes):
            if episode == 5:
                before = population.snapshot([agent])[0]
                mask = masks.global_magnitude_masks(population.weights([agent]), 0.4)
                population.set_mask([agent], mask)
                after = population.snapshot([agent])[0]
                seen[int(agent)] = (before, after, [m[0].numpy() for m in mask])

    result = run(
        cfg, [fresh_agent(cfg, 0), fresh_agent(cfg, 1)], early_stop=False, max_episodes=30, callback=prune_at_episode_5
    )
    for agent, (before, after, mask) in seen.items():
        assert after.epsilon == before.epsilon and after.adam_steps == before.adam_steps
        assert np.array_equal(after.replay["obs"], before.replay["obs"])
        for layer, keep in enumerate(mask):
            assert np.array_equal(after.params[2 * layer], before.params[2 * layer] * keep)
            assert not result.final[agent].params[2 * layer][~keep].any()
            assert not result.final[agent].target[2 * layer][~keep].any()


def test_epsilon_schedules_follow_the_protocol():
    cartpole = run(CARTPOLE, [fresh_agent(CARTPOLE, 0)], early_stop=False, max_episodes=100).episodes
    expected = np.maximum(0.95 ** np.arange(100), 0.01)  # per episode, floor 0.01
    np.testing.assert_allclose(cartpole["epsilon"], expected, rtol=1e-12)
    acrobot = run(ACROBOT, [fresh_agent(ACROBOT, 0)], early_stop=False, max_episodes=3).episodes
    steps_before = np.concatenate([[0], np.cumsum(acrobot["length"])[:-1]])
    np.testing.assert_allclose(acrobot["epsilon"], np.maximum(0.999**steps_before, 0.01), rtol=1e-9)


def test_early_stopping_after_ten_solved_episodes():
    cfg = CARTPOLE.replace(solved_return=15.0)  # easy threshold so the test is short
    result = run(cfg, [fresh_agent(cfg, s) for s in range(3)], early_stop=True, max_episodes=200)
    for agent, log in result.episodes.groupby("agent"):
        streak, first = 0, None
        for episode, ret in enumerate(log["return"], start=1):
            streak = streak + 1 if ret >= 15.0 else 0
            if streak == 10 and first is None:
                first = episode
        summary = result.agents.loc[agent]
        assert summary.stop_reason == "early_stop"
        assert summary.converged_episode == first == len(log) == summary.episodes_run


def _magnitude_mask(agent, fraction):
    """A global L1 mask of an agent's weights, as a list of bool arrays [out, in]."""
    return [
        m[0].numpy()
        for m in masks.global_magnitude_masks([torch.from_numpy(w[None]) for w in agent.params[0::2]], fraction)
    ]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("cfg", [CARTPOLE], ids=["cartpole-float64"])  # Acrobot: same, 35 s instead of 16 s
def test_masked_engine_matches_reference_dqn_with_the_mask(cfg):
    """A pruned agent (m * theta_0, mask re-applied after every Adam step) takes the same actions,
    gets the same returns and ends with the same parameters as the reference DQN given the mask,
    over the episodes that reach 3,000 transitions (float64, so that 1e-5 holds on Acrobot too)."""
    seed, dtype = 5, torch.float64
    mask = [
        np.random.default_rng(seed + layer).random(w.shape) >= 0.5
        for layer, w in enumerate(fresh_agent(cfg, seed).params[0::2])
    ]
    reference_actions: list[int] = []
    reference = reference_dqn.train(
        cfg, seed, cfg.max_episodes, record_actions=reference_actions, dtype=dtype, max_steps=3000, mask=mask
    )
    assert reference["steps"] >= 3000, "the comparison must cover at least 3,000 steps"

    def stop_after_3000_steps(population, ends):
        population.stop(ends.agents[ends.transitions >= 3000])

    agent = fresh_agent(cfg, seed, dtype=np.float64).pruned(mask)
    population = Population(cfg, [agent], early_stop=False, callback=stop_after_3000_steps)
    engine_actions = record_actions(population)
    result = population.run()

    assert_same_actions(engine_actions, reference_actions)
    assert result.episodes["return"].tolist() == reference["returns"]
    final = result.final[0]
    linears = [m for m in reference["q_network"] if isinstance(m, torch.nn.Linear)]
    for layer, (linear, keep) in enumerate(zip(linears, mask)):
        weight, bias = linear.weight.detach().numpy(), linear.bias.detach().numpy()
        assert not weight[~keep].any() and not final.params[2 * layer][~keep].any()
        assert final.params[2 * layer][keep].all(), "kept weights are not zero"
        np.testing.assert_allclose(final.params[2 * layer], weight, atol=1e-5, rtol=0)
        np.testing.assert_allclose(final.params[2 * layer + 1][:, 0], bias, atol=1e-5, rtol=0)
    assert final.epsilon == reference["epsilon"] and final.transitions == reference["steps"]


def test_masked_agent_alone_equals_it_inside_a_population_bitwise():
    """A pruned agent alone and at position 4 of 9 (dense and other pruned agents, some leaving
    early): the same returns and bitwise the same final state, mask included."""
    cfg = CARTPOLE
    mine = fresh_agent(cfg, 3)
    mine = mine.pruned(_magnitude_mask(mine, 0.6))
    alone = run(cfg, [mine], early_stop=False, max_episodes=40)
    others = []
    for seed in (11, 12, 13, 14, 15, 16, 17, 18):
        agent = fresh_agent(cfg, seed)
        others.append(agent if seed % 3 == 0 else agent.pruned(_magnitude_mask(agent, 0.2 + 0.1 * (seed % 5))))
    agents = [*others[:4], mine, *others[4:]]

    def stop_some(population, ends):
        population.stop([a for a, e in zip(ends.agents, ends.episodes) if a != 4 and e == 10 + 3 * a])

    together = run(cfg, agents, early_stop=False, max_episodes=40, callback=stop_some, chunk_size=3)
    log = together.episodes[together.episodes.agent == 4]
    assert log["return"].tolist() == alone.episodes["return"].tolist()
    a, b = alone.final[0].to_arrays(), together.final[4].to_arrays()
    assert sorted(a) == sorted(b) and any(k.startswith("mask.") for k in a)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert alone.final[0].adam_steps > 50


@pytest.mark.parametrize("cfg", [CARTPOLE, ACROBOT], ids=["cartpole", "acrobot"])
def test_agents_admitted_mid_run_each_equal_their_run_alone(cfg):
    """Continuous batching: agents admitted into a running population (a pruned one into a
    dense population, a dense one out of phase after it, while others leave) each give
    bitwise what they give alone: the same episodes and the same final state."""
    pruned = fresh_agent(cfg, 3)
    pruned = pruned.pruned(_magnitude_mask(pruned, 0.6))
    snapshot = {}

    def keep(population, ends):
        if 5 in ends.episodes:
            snapshot["out of phase"] = population.snapshot(ends.agents[ends.episodes == 5][:1])[0]

    run(cfg, [fresh_agent(cfg, 9)], early_stop=False, max_episodes=5, callback=keep)
    newcomers = {2: pruned, 3: snapshot["out of phase"]}  # agent id -> start state
    assert newcomers[3].transitions % cfg.train_freq or cfg.train_freq == 1

    def stop_first(population, ends):
        population.stop([a for a, e in zip(ends.agents, ends.episodes) if a == 0 and e == 2])

    population = Population(
        cfg, [fresh_agent(cfg, s) for s in (11, 12)], early_stop=False, max_episodes=12, callback=stop_first
    )
    admitted = []

    def admit(p):  # once an agent has made 30, then 90 transitions
        if len(admitted) < 2 and p.live and p.transitions.max() >= (30, 90)[len(admitted)]:
            admitted.extend(p.admit([newcomers[len(admitted) + 2]]))

    together = population.run(tick=admit)
    assert admitted == [2, 3] and set(together.agents.stop_reason) == {"callback", "max_episodes"}
    for agent, start in newcomers.items():
        alone = run(cfg, [start], early_stop=False, max_episodes=12)
        log = together.episodes[together.episodes.agent == agent].drop(columns="agent").reset_index(drop=True)
        assert log.equals(alone.episodes.drop(columns="agent")), agent
        a, b = alone.final[0].to_arrays(), together.final[agent].to_arrays()
        assert sorted(a) == sorted(b)
        for name in a:
            assert np.array_equal(a[name], b[name]), (agent, name)
    assert "mask.0" in together.final[2].to_arrays() and together.final[3].mask is None


def test_every_per_agent_field_of_a_population_is_in_its_structs():
    """A population holds its per-agent state only in `batch` and `records` (`ebnb.batch`),
    which admit extends and compaction selects as one: a per-agent array kept beside them
    would be left out of both (tests/test_batch.py holds the structs' fields aligned)."""
    n = 7  # no other dimension of a CartPole population
    population = Population(CARTPOLE, [fresh_agent(CARTPOLE, seed) for seed in range(n)], max_episodes=1)
    per_agent = {
        name
        for name, value in vars(population).items()
        if isinstance(value, (np.ndarray, list, torch.Tensor, AgentArrays)) and len(value) == n
    }
    assert per_agent == {"batch", "records"}
