"""Mutation check: does each test fail when the code it guards is broken?

    python tools/mutants.py                 # every mutant
    python tools/mutants.py NAME [NAME...]  # some of them
    python tools/mutants.py --list

Copies the repository (without .git, .venv, store/) into a fresh directory from
tempfile.mkdtemp, then for each mutant: restores the pristine copy of its file, replaces the
`original` string (which must occur exactly once) by `replacement`, runs the mutant's pytest
node ids in the copy (PYTHONPATH points at the copy, so pipeline.py, papermill kernels and
Dask workers import the mutated code) and reports "killed" (some test failed), "survived",
or "error" (pytest could not run, or the original string is no longer in the file). It edits
and runs nothing outside the copy it made, and refuses to otherwise. Exit status 1 unless
every mutant was killed.

MUTANTS is a plain list of small records (name, file, original, replacement, tests): the
recovery of interrupted work (issue 9.1-9.3), the protocol's start states, similarity,
configs, random streams and messages (9.4-9.7), the fused kernel (issue 10), and continuous
batching, run records and the compiled Acrobot dynamics (issue 11), the controls and input
survival, the EB Exploit sweep (issue 13), the verdicts by non-inferiority and the
chance-corrected mask similarity (issue 28), what names a result (issue 30.3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARDS = "tests/test_shards.py::"
CRASH = SHARDS + "test_a_shard_crashed_while_learning_resumes_to_identical_results"
KILL = SHARDS + "test_compute_killed_while_a_checkpoint_exists_resumes_from_it_to_identical_results"
EXPERIMENTS = "tests/test_experiments.py::"
CONTROLS = "tests/test_controls.py::"
SWEEP = "tests/test_sweep.py::"
STATS = "tests/test_stats.py::"
VERDICTS = "tests/test_verdicts.py::"
COST = "tests/test_cost.py::"
KAPPA = "tests/test_kappa.py::"
IDENTITY = "tests/test_identity.py::"
TICKET_START = 'start = fresh_agent(unit.dense.dqn, unit.dense.seed) if unit.mode == "retrain" else dense_state\n'
KERNEL = "tests/test_kernel.py::"
FREED_SLOTS = SHARDS + "test_tickets_entering_freed_slots_store_the_same_bytes_as_tickets_started_together"
LOAD = "        return torch.load(io.BytesIO(payload), weights_only=False)"

MUTANTS = [
    # issue 9.1: a resume that loses learning state
    dict(
        name="resume-zeroes-adam",
        file="ebnb/checkpoint.py",
        original=LOAD,
        replacement=LOAD.replace("return torch.load", "state = torch.load") + "\n"
        "        opt = state['population']['optimizer']\n"
        "        [t.zero_() for t in opt.exp_avg + opt.exp_avg_sq]\n"
        "        opt.steps.zero_()\n"
        "        return state",
        tests=[f"{CRASH}[{step}]" for step in ("dense runs", "finetune", "retrain", "eb_exploit")],
    ),
    dict(
        name="resume-sets-target-to-online",
        file="ebnb/checkpoint.py",
        original=LOAD,
        replacement=LOAD.replace("return torch.load", "state = torch.load") + "\n"
        "        state['population']['target'] = [p.detach().clone() for p in state['population']['params']]\n"
        "        return state",
        tests=[f"{CRASH}[{step}]" for step in ("dense runs", "finetune", "retrain", "eb_exploit")],
    ),
    dict(
        name="resume-drops-dense-job-state",
        file="ebnb/experiments/dense_training.py",
        original='        saved["job"]\n        if saved\n        else {\n            "drawn"',
        replacement='        {\n            "drawn"',
        tests=[f"{CRASH}[dense runs]"],
    ),
    dict(
        name="resume-drops-eb-exploit-found-tickets",
        file="ebnb/experiments/exploit.py",
        original='    found: dict[int, tuple[int, AgentState, list]] = job["found"]',
        replacement='    found = job["found"] = {} if saved else job["found"]',
        tests=[f"{CRASH}[eb_exploit]"],
    ),
    # issue 9.2: a checkpoint that is never resumed from
    dict(
        name="checkpoint-ignored-on-resume",
        file="ebnb/checkpoint.py",
        original="        if self.path is None or not self.path.exists():",
        replacement="        if True:",
        tests=[KILL],
    ),
    # issue 9.3: stored results that do not identify the trained network
    dict(
        name="ticket-hash-constant",
        file="ebnb/experiments/tickets.py",
        original='"state_sha256": [state_sha256(final)]',
        replacement='"state_sha256": ["0" * 64]',
        tests=[
            EXPERIMENTS + "test_ticket_results_hash_the_network_trained_from_the_protocols_start_state",
            SHARDS + "test_stored_tickets_and_eb_exploit_runs_carry_the_hash_of_their_trained_network",
        ],
    ),
    dict(
        name="eb-exploit-hash-constant",
        file="ebnb/experiments/exploit.py",
        original='"state_sha256": [state_sha256(finals[i])]',
        replacement='"state_sha256": ["0" * 64]',
        tests=[
            EXPERIMENTS + "test_eb_exploit_finetunes_the_search_state_it_pruned_once_epsilon_is_at_its_floor",
            SHARDS + "test_stored_tickets_and_eb_exploit_runs_carry_the_hash_of_their_trained_network",
        ],
    ),
    dict(
        name="hash-ignores-adam-state",
        file="ebnb/experiments/states.py",
        original="    for name, array in sorted(state.to_arrays().items()):",
        replacement="    for name, array in sorted(kv for kv in state.to_arrays().items() if 'adam' not in kv[0]\n"
        "                              and not kv[0].startswith('exp_avg')):",
        tests=[EXPERIMENTS + "test_state_sha256_covers_parameters_target_mask_and_adam_state"],
    ),
    dict(
        name="finetune-start-wipes-adam",
        file="ebnb/experiments/tickets.py",
        original='start = fresh_agent(unit.dense.dqn, unit.dense.seed) if unit.mode == "retrain" else dense_state',
        replacement='start = fresh_agent(unit.dense.dqn, unit.dense.seed) if unit.mode == "retrain" else dense_state.replace('
        "exp_avg=[0 * a for a in dense_state.exp_avg], exp_avg_sq=[0 * a for a in dense_state.exp_avg_sq], "
        "adam_steps=0)",
        tests=[EXPERIMENTS + "test_ticket_results_hash_the_network_trained_from_the_protocols_start_state"],
    ),
    dict(
        name="eb-exploit-finetune-start-wipes-adam",
        file="ebnb/experiments/exploit.py",
        original="(fresh_agent(cfg, units[i].seed) if units[i].rewind else found[i][1])",
        replacement="(fresh_agent(cfg, units[i].seed) if units[i].rewind else found[i][1].replace("
        "exp_avg=[0 * a for a in found[i][1].exp_avg], adam_steps=0))",
        tests=[EXPERIMENTS + "test_eb_exploit_finetunes_the_search_state_it_pruned_once_epsilon_is_at_its_floor"],
    ),
    # issue 9.6: assertions that could not fail
    dict(
        name="eb-exploit-compares-masks-before-epsilon-floor",
        file="ebnb/experiments/exploit.py",
        original="            if epsilon > cfg.eps_floor or agent in found:",
        replacement="            if agent in found:",
        tests=[EXPERIMENTS + "test_eb_exploit_finetunes_the_search_state_it_pruned_once_epsilon_is_at_its_floor"],
    ),
    dict(
        name="list-reports-nothing-cached",
        file="pipeline.py",
        original="                done, size = sizes[name]",
        replacement="                done, size = 0, 0",
        tests=[
            "tests/test_pipeline.py::test_run_one_notebook_into_a_folder_named_by_its_overrides_then_list_shows_it_cached"
        ],
    ),
    # issue 9.4: nbval against the project's store
    dict(
        name="tests-use-the-project-store",
        file="conftest.py",
        original="        os.environ[name] = str(_SESSION_DIR / sub)",
        replacement="        pass",
        tests=["tests/test_pipeline.py::test_tests_and_nbval_use_a_fresh_temporary_store_and_outputs_folder"],
    ),
    # issue 9.4-9.7: unit-level mutants (start states, similarity, configs, rng, masks, messages)
    dict(
        name="similarity-first-seed",
        file="ebnb/experiments/dense.py",
        original="pd.DataFrame(np.mean(matrices, axis=0), index=episodes",
        replacement="pd.DataFrame(matrices[0], index=episodes",
        tests=[EXPERIMENTS + "test_mask_similarity_equals_the_mean_of_per_seed_matrices_recomputed"],
    ),
    dict(
        name="retrain-from-theta-e",
        file="ebnb/experiments/tickets.py",
        original=TICKET_START,
        replacement='start = fresh_agent(unit.dense.dqn, unit.dense.seed).replace(params=dense_state.params, target=dense_state.target) if unit.mode == "retrain" else dense_state\n',
        tests=[EXPERIMENTS + "test_retrain_starts_from_masked_theta0_with_a_fresh_state"],
    ),
    dict(
        name="retrain-from-finetune-snapshot",
        file="ebnb/experiments/tickets.py",
        original=TICKET_START,
        replacement="start = dense_state\n",
        tests=[EXPERIMENTS + "test_retrain_starts_from_masked_theta0_with_a_fresh_state"],
    ),
    dict(
        name="finetune-drops-adam-moments",
        file="ebnb/experiments/tickets.py",
        original=TICKET_START,
        replacement='start = fresh_agent(unit.dense.dqn, unit.dense.seed) if unit.mode == "retrain" else dense_state.replace(exp_avg=[0 * p for p in dense_state.exp_avg], exp_avg_sq=[0 * p for p in dense_state.exp_avg_sq])\n',
        tests=[EXPERIMENTS + "test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode"],
    ),
    dict(
        name="finetune-resets-adam-steps",
        file="ebnb/experiments/tickets.py",
        original=TICKET_START,
        replacement='start = fresh_agent(unit.dense.dqn, unit.dense.seed) if unit.mode == "retrain" else dense_state.replace(adam_steps=0)\n',
        tests=[EXPERIMENTS + "test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode"],
    ),
    dict(
        name="finetune-fresh-epsilon",
        file="ebnb/experiments/tickets.py",
        original=TICKET_START,
        replacement='start = fresh_agent(unit.dense.dqn, unit.dense.seed) if unit.mode == "retrain" else dense_state.replace(epsilon=1.0)\n',
        tests=[EXPERIMENTS + "test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode"],
    ),
    # issue 11: continuous batching, run records, the compiled Acrobot dynamics
    dict(
        name="admitted-agents-get-empty-replay",
        file="ebnb/replay.py",
        original="torch.cat([t, other.data[name]])",
        replacement="torch.cat([t, 0 * other.data[name]])",
        tests=[FREED_SLOTS],
    ),
    dict(
        name="admitted-agents-lose-their-mask",
        file="ebnb/population.py",
        original="self.mask, new.mask = self._masks(), new._masks()",
        replacement="self.mask, new.mask = self._masks(), [torch.ones_like(m) for m in new._masks()]",
        tests=[FREED_SLOTS, "tests/test_population.py::test_agents_admitted_mid_run_each_equal_their_run_alone"],
    ),
    dict(
        name="ticket-queue-restarts-on-resume",
        file="ebnb/experiments/tickets.py",
        original="    cfg, first = units[0].dense.dqn, units[0].dense\n",
        replacement='    cfg, first = units[0].dense.dqn, units[0].dense\n    job["admitted"] = min(population, len(units))\n',
        tests=[SHARDS + "test_tickets_crashed_while_entering_freed_slots_resume_to_identical_results"],
    ),
    dict(
        name="run-record-counts-population-steps",
        file="ebnb/population.py",
        original="accounting.TALLY.agent_steps += len(self.ids)",
        replacement="accounting.TALLY.agent_steps += 1",
        tests=["tests/test_accounting.py"],
    ),
    dict(
        name="acrobot-rk4-full-step-for-k2",
        file="ebnb/dynamics.py",
        original="k3 = _dsdt(s0 + dt2 * k2[0], s1 + dt2 * k2[1], s2 + dt2 * k2[2], s3 + dt2 * k2[3], a)",
        replacement="k3 = _dsdt(s0 + dt * k2[0], s1 + dt * k2[1], s2 + dt * k2[2], s3 + dt * k2[3], a)",
        tests=[
            "tests/test_envs.py::test_acrobot_one_step_from_random_states",
            KERNEL + "test_golden_hashes_in_process_match_the_committed_ones",
        ],
    ),
    dict(
        name="pruned-target-not-masked",
        file="ebnb/agent.py",
        original="target=apply(self.target), mask=list(mask)",
        replacement="target=self.target, mask=list(mask)",
        tests=[
            EXPERIMENTS + "test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode",
            EXPERIMENTS + "test_retrain_starts_from_masked_theta0_with_a_fresh_state",
        ],
    ),
    dict(
        name="dense-mask-largest-pruned",
        file="ebnb/masks.py",
        original="torch.argsort(magnitudes, dim=1, stable=True)",
        replacement="torch.argsort(magnitudes, dim=1, stable=True, descending=True)",
        tests=[EXPERIMENTS + "test_dense_runs_record_masks_snapshots_and_baseline"],
    ),
    dict(
        name="config-lr",
        file="ebnb/config.py",
        original="lr=0.0025,",
        replacement="lr=0.0025 * 2,",
        tests=["tests/test_config.py::test_configs_hold_the_thesis_hyperparameters"],
    ),
    dict(
        name="config-acrobot-epsilon-per-episode",
        file="ebnb/config.py",
        original='eps_decay_per="step",',
        replacement='eps_decay_per="episode",',
        tests=["tests/test_config.py::test_configs_hold_the_thesis_hyperparameters"],
    ),
    dict(
        name="config-learning-starts",
        file="ebnb/config.py",
        original="learning_starts=1000,",
        replacement="learning_starts=500,",
        tests=["tests/test_config.py::test_configs_hold_the_thesis_hyperparameters"],
    ),
    dict(
        name="rng-purpose-ignored",
        file="ebnb/rng.py",
        original="_mix(np.uint64(seed) * _GOLDEN + np.uint64(stream))",
        replacement="_mix(np.uint64(seed) * _GOLDEN)",
        tests=[
            "tests/test_rng.py::test_bits_equal_the_independent_implementation",
            "tests/test_rng.py::test_distinct_seeds_and_purposes_give_distinct_streams",
        ],
    ),
    dict(
        name="rng-depends-on-batch-size",
        file="ebnb/rng.py",
        original="int(stream), np.asarray(counter, dtype=np.int64))\n\n\ndef integers",
        replacement="int(stream), np.asarray(counter, dtype=np.int64) + np.size(counter))\n\n\ndef integers",
        tests=["tests/test_rng.py::test_an_element_does_not_depend_on_the_batch_around_it"],
    ),
    dict(
        name="rng-uniform-half-range",
        file="ebnb/rng.py",
        original=">> np.uint64(11)) * (2.0**-53)",
        replacement=">> np.uint64(12)) * (2.0**-53)",
        tests=["tests/test_rng.py::test_uniform_is_uniform"],
    ),
    dict(
        name="bad-input-message-changed",
        file="ebnb/experiments/grids.py",
        original='f"{name}: the grid needs at least one value"',
        replacement='f"{name}: the grid needs a value"',
        tests=["tests/test_bad_inputs.py::test_readme_table_shows_the_real_message"],
    ),
    dict(
        name="bad-input-positive-int-message",
        file="ebnb/config.py",
        original='f"{name} must be an integer >= 1, got {value!r}"',
        replacement='f"{name} must be a positive integer, got {value!r}"',
        tests=["tests/test_bad_inputs.py::test_readme_table_shows_the_real_message"],
    ),
    dict(
        name="bench-ignores-steps",
        file="ebnb/__main__.py",
        original="benchmark.run(cfgs, counts, args.steps, device=args.device)",
        replacement="benchmark.run(cfgs, counts, device=args.device)",
        tests=["tests/test_cli.py::test_cli_bench_json_rows"],
    ),
    # issue 10: the fused kernel and its same-bits promise
    dict(
        name="kernel-mask-not-reapplied",
        file="ebnb/kernel.py",
        original="        if masked:\n",
        replacement="        if False:\n",
        tests=[
            KERNEL + "test_one_update_equals_the_torch_path_per_agent",
            "tests/test_population.py::test_masked_engine_matches_reference_dqn_with_the_mask",
        ],
    ),
    dict(
        name="kernel-uses-a-neighbours-mask",
        file="ebnb/kernel.py",
        original="            keep = masks[layer][k]\n",
        replacement="            keep = masks[layer][max(k - 1, 0)]\n",
        tests=["tests/test_population.py::test_masked_agent_alone_equals_it_inside_a_population_bitwise"],
    ),
    dict(
        name="kernel-adam-without-bias-correction",
        file="ebnb/kernel.py",
        original="    step_size = cast(lr / (1.0 - _power(beta1, step)))",
        replacement="    step_size = cast(lr)",
        tests=[KERNEL + "test_one_update_equals_the_torch_path_per_agent"],
    ),
    dict(
        name="kernel-sum-in-another-order",
        file="ebnb/layers.py",
        original="acc[o] = (((acc[o] + c0 * rows[i0, o]) + c1 * rows[i1, o]) + c2 * rows[i2, o]) + c3 * rows[i3, o]",
        replacement="acc[o] = acc[o] + ((c0 * rows[i0, o] + c1 * rows[i1, o]) + (c2 * rows[i2, o] + c3 * rows[i3, o]))",
        tests=[KERNEL + "test_golden_hashes_in_process_match_the_committed_ones"],
    ),
    dict(
        name="torch-path-mask-not-reapplied",
        file="ebnb/arithmetic.py",
        original="        if population.mask is not None:\n            for w, m in zip(qnet.weights(population.params), population.mask):",
        replacement="        if False:\n            for w, m in zip(qnet.weights(population.params), population.mask):",
        tests=[KERNEL + "test_one_update_equals_the_torch_path_per_agent"],
    ),
    # the engine's step-by-step path against the independent reference DQN
    dict(
        name="engine-learns-a-step-early",
        file="ebnb/population.py",
        original="(self.transitions >= cfg.learning_starts)",
        replacement="(self.transitions >= cfg.learning_starts - 1)",
        tests=["tests/test_population.py::test_engine_matches_reference_dqn"],
    ),
    dict(
        name="engine-target-never-copied",
        file="ebnb/episode_end.py",
        original="            t.index_copy_(0, index, weights.index_select(0, index))",
        replacement="            pass",
        tests=["tests/test_population.py::test_engine_matches_reference_dqn"],
    ),
    # issue 13: controls change exactly one thing, from the agent's own stream
    dict(
        name="control-ignored",
        file="ebnb/experiments/tickets.py",
        original="    if isinstance(unit, ControlRun):\n        return controls.control_start(",
        replacement="    if False:\n        return controls.control_start(",
        tests=[CONTROLS + "test_stored_controls_are_agents_trained_from_the_control_start"],
    ),
    dict(
        name="layer-shuffle-keeps-positions",
        file="ebnb/controls.py",
        original="m.reshape(-1)[_permutation(m.size, key, layer).numpy()]",
        replacement="m.reshape(-1)",
        tests=[CONTROLS + "test_a_layer_shuffled_mask_keeps_each_layers_sparsity_not_its_positions"],
    ),
    dict(
        name="control-key-ignores-episode",
        file="ebnb/controls.py",
        original="* 1_000_000 + prune_episode",
        replacement="* 1_000_000",
        tests=[CONTROLS + "test_a_control_is_a_function_of_its_agent_p_and_episode"],
    ),
    dict(
        name="permuted-weights-move-pruned-values",
        file="ebnb/controls.py",
        original="        kept = np.flatnonzero(keep)\n",
        replacement="        kept = np.arange(keep.size)\n",
        tests=[CONTROLS + "test_permuted_weights_shuffle_the_surviving_values_within_each_layer"],
    ),
    dict(
        name="input-survival-of-the-wrong-axis",
        file="ebnb/experiments/step.py",
        original=".reshape(len(drawn), hidden, n_inputs).mean(axis=1)",
        replacement=".reshape(len(drawn), n_inputs, hidden).mean(axis=2)",
        tests=[EXPERIMENTS + "test_input_survival_is_the_kept_share_of_each_inputs_outgoing_weights"],
    ),
    # issue 13: EB Exploit, swept: detection, continuation, costs
    dict(
        name="sweep-search-starts-a-window-late",
        file="ebnb/sweep.py",
        original="for episode in range(first, last + 1, window):",
        replacement="for episode in range(first + window, last + 1, window):",
        tests=[SWEEP + "test_detection_from_the_trace_is_eb_exploits_search_and_the_rest_its_finetune"],
    ),
    dict(
        name="sweep-ticket-continues-an-episode-late",
        file="ebnb/experiments/tickets.py",
        original="max_episodes=episode - at[nearest]).run()",
        replacement="max_episodes=episode - at[nearest] + 1).run()",
        tests=[SWEEP + "test_eb_exploit_is_the_finetune_ticket_at_its_episode_and_the_sweeps_ticket"],
    ),
    dict(
        name="sweep-costs-count-the-finetune-only",
        file="ebnb/experiments/exploit_sweep.py",
        original='            **{name: ticket[name] for name in ("env_steps", "updates", "converged", "test_return")},',
        replacement='            **{name: ticket[name] for name in ("converged", "test_return")},\n'
        '            **{name: ticket[name] - log.loc[ticket["prune_episode"], name] for name in ("env_steps", "updates")},',
        tests=[SWEEP + "test_costs_are_the_runs_counters_relative_to_the_unpruned_run"],
    ),
    # issue 13: the sweep's inputs, planned while the run goes
    dict(
        name="planned-stages-run-in-one-shard",
        file="ebnb/compute.py",
        original="cut = _cut(stage, min(shard_size, -(-len(stage.units) // spread)))",
        replacement="cut = _cut(stage, shard_size)",
        tests=[SWEEP + "test_the_scheduler_plans_the_sweep_tickets_from_the_traces_and_runs_them_as_shards[local]"],
    ),
    dict(
        name="planned-stage-lists-only-missing-units",
        file="ebnb/experiments/exploit_sweep.py",
        original='return Step("sweep tickets", "sweep_ticket", drawn, tickets, ("dense runs",))',
        replacement='return Step("sweep tickets", "sweep_ticket", '
        'tuple(t for t in drawn if not store.exists("sweep_ticket", t)), tickets, ("dense runs",))',
        tests=[SWEEP + "test_a_rerun_plans_the_same_stage_so_it_cuts_the_same_shards_and_resumes_their_checkpoints"],
    ),
    # issue 28: verdicts by non-inferiority
    dict(
        name="ni-direction-flipped",
        file="ebnb/stats.py",
        original="    sign = 1.0 if higher_is_better else -1.0  # sign * difference: larger is better",
        replacement="    sign = -1.0 if higher_is_better else 1.0",
        tests=[STATS + "test_ni_for_returns_is_welch_shifted_by_the_margin"],
    ),
    dict(
        name="ni-margin-sign-flipped",
        file="ebnb/stats.py",
        original="float(stats.t.sf((sign * estimate + margin) / se, df)))\n\n\ndef paired",
        replacement="float(stats.t.sf((sign * estimate - margin) / se, df)))\n\n\ndef paired",
        tests=[STATS + "test_ni_for_returns_is_welch_shifted_by_the_margin"],
    ),
    dict(
        name="ni-adjustment-dropped",
        file="ebnb/analysis/criteria.py",
        original='table["p_ni_holm"] = by["p_ni"].transform(tests.holm)',
        replacement='table["p_ni_holm"] = table["p_ni"]',
        tests=[VERDICTS + "test_ni_p_values_are_the_welch_ni_test_and_holm_over_the_cells_of_a_comparison"],
    ),
    dict(
        name="sweep-return-holm-dropped",
        file="ebnb/sweep.py",
        original="stats.holm(table.p_return_ni),\n        stats.holm(table.p_return_worse),",
        replacement="table.p_return_ni,\n        table.p_return_worse,",
        tests=[SWEEP + "test_the_return_is_judged_by_criterion_1s_ni_test_paired_by_seed_with_holm_over_the_schedules"],
    ),
    dict(
        name="sweep-return-margin-ignores-the-worst-return",
        file="ebnb/sweep.py",
        original="analysis.ni_margin(unpruned, True, analysis.WORST_RETURN[env_id])",
        replacement="analysis.ni_margin(unpruned, True, 0.0)",
        tests=[SWEEP + "test_the_return_is_judged_by_criterion_1s_ni_test_paired_by_seed_with_holm_over_the_schedules"],
    ),
    dict(
        name="holm-not-step-down",
        file="ebnb/stats.py",
        original="np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))",
        replacement="p[order] * (len(p) - np.arange(len(p)))",
        tests=[STATS + "test_holm_by_hand"],
    ),
    dict(
        name="criterion-4-against-the-mean",
        file="ebnb/analysis/criteria.py",
        original="earlier=own.prune_episode < own.converged_episode)",
        replacement="earlier=own.prune_episode < own.converged_episode.mean())",
        tests=[VERDICTS + "test_criterion_4_is_judged_per_seed_not_against_the_mean"],
    ),
    # issue 28.5: a ticket's whole cost
    dict(
        name="cost-updates-from-learning-starts-off-by-one",
        file="ebnb/cost.py",
        original="steps // cfg.train_freq - (cfg.learning_starts - 1) // cfg.train_freq",
        replacement="steps // cfg.train_freq - cfg.learning_starts // cfg.train_freq",
        tests=[COST + "test_updates_follow_from_env_steps_by_the_engines_rule"],
    ),
    dict(
        name="cost-dense-steps-one-episode-short",
        file="ebnb/cost.py",
        original='"episode": np.asarray(episodes)})',
        replacement='"episode": np.asarray(episodes) - 1})',
        tests=[COST + "test_the_cost_before_pruning_is_the_dense_runs_and_after_it_the_tickets_own_counters"],
    ),
    dict(
        name="cost-density-not-applied",
        file="ebnb/cost.py",
        original="return _with_macs(table, cfg, 1.0 - tickets.P.to_numpy(float))",
        replacement="return _with_macs(table, cfg, 1.0)",
        tests=[COST + "test_the_cost_before_pruning_is_the_dense_runs_and_after_it_the_tickets_own_counters"],
    ),
    # issue 28.6: mask similarity corrected for chance
    dict(
        name="kappa-chance-counts-only-both-kept",
        file="ebnb/masks.py",
        original="(a * b + (1.0 - a) * (1.0 - b))",
        replacement="(a * b)",
        tests=[KAPPA + "test_kappa_of_two_masks_is_cohens_kappa_of_their_two_by_two_table"],
    ),
    dict(
        name="layer-chance-ignores-layer-sizes",
        file="ebnb/masks.py",
        original="weights = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)",
        replacement="weights = np.full(len(sizes), 1.0 / len(sizes))",
        tests=[KAPPA + "test_the_layer_aware_chance_is_the_mean_agreement_over_every_within_layer_arrangement"],
    ),
    dict(
        name="layer-chance-rest-from-the-pruned-share",
        file="ebnb/experiments/dense.py",
        original="kept_rest = n_weights - masks.n_pruned(fraction, n_weights) - kept_first",
        replacement="kept_rest = masks.n_pruned(fraction, n_weights) - kept_first",
        tests=[KAPPA + "test_layer_densities_derived_from_input_survival_are_the_masks_own"],
    ),
    dict(
        name="kappa-global-chance-from-p-and-the-kept-share",
        file="ebnb/analysis/mask_agreement.py",
        original="masks.chance_agreement(1 - fraction, 1 - fraction)",
        replacement="masks.chance_agreement(fraction, 1 - fraction)",
        tests=[KAPPA + "test_the_summary_gives_chance_kappa_and_the_settle_episode_per_seed_with_its_interval"],
    ),
    dict(
        name="kappa-settles-on-raw-similarity",
        file="ebnb/analysis/mask_agreement.py",
        original="settle_episode(k[:, -1], episodes, settled) for k in per_seed",
        replacement="settle_episode(k[:, -1], episodes, settled) for k in similarity",
        tests=[KAPPA + "test_the_summary_gives_chance_kappa_and_the_settle_episode_per_seed_with_its_interval"],
    ),
    # issue 28.9: the figures' bands
    dict(
        name="band-normal-not-student-t",
        file="ebnb/stats.py",
        original="half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1)",
        replacement="half = stats.norm.ppf(0.5 + confidence / 2)",
        tests=["tests/test_plots.py::test_the_band_is_the_student_t_interval_of_the_mean"],
    ),
    # issue 30.3: identity = what was trained
    dict(
        name="identity-hashes-recorded-fields",
        file="ebnb/identity.py",
        original='if not (identity and (field.metadata.get("recorded") or _is_default(field, item))):',
        replacement="if not (identity and _is_default(field, item)):",
        tests=[
            IDENTITY + "test_recorded_fields_name_nothing_at_any_depth",
            "tests/test_published.py::test_the_full_profile_at_fewer_P_has_nothing_to_compute_from_the_published_results",
        ],
    ),
    dict(
        name="identity-hashes-defaults",
        file="ebnb/identity.py",
        original='if not (identity and (field.metadata.get("recorded") or _is_default(field, item))):',
        replacement='if not (identity and field.metadata.get("recorded")):',
        tests=[IDENTITY + "test_a_new_option_at_its_default_rekeys_nothing_and_any_other_value_does"],
    ),
    dict(
        name="identity-hashes-class-names",
        file="ebnb/identity.py",
        original='return {"__kind__": _kind(type(value)), **fields}',
        replacement='return {"__kind__": type(value).__name__, **fields}',
        tests=[IDENTITY + "test_the_kind_name_not_the_class_name_enters_the_hash"],
    ),
    dict(
        name="a-record-covers-anything",
        file="ebnb/identity.py",
        original="    for name, wanted in recorded(config).items():",
        replacement="    for name, wanted in {}.items():",
        tests=[IDENTITY + "test_a_stored_result_serves_a_request_for_less_and_one_for_more_is_widened"],
    ),
    dict(
        name="sweep-view-not-narrowed",
        file="ebnb/experiments/step.py",
        original='    if step == "eb_exploit sweep":',
        replacement='    if step == "not narrowed":',
        tests=[
            "tests/test_published.py::test_a_set_recording_more_P_serves_a_grid_asking_for_fewer_as_if_computed_for_it"
        ],
    ),
]

_MARKER = ".ebnb-mutants-copy"


def make_copy() -> Path:
    """A copy of the repository in a new temporary directory, marked as ours."""
    base = Path(tempfile.mkdtemp(prefix="ebnb-mutants-"))
    clone = base / "repo"
    ignore = shutil.ignore_patterns(".git", ".venv", "store", "__pycache__", "*.egg-info", ".pytest_cache")
    shutil.copytree(ROOT, clone, ignore=ignore)
    (clone / _MARKER).write_text(str(base))
    return clone


def check_copy(clone: Path) -> Path:
    """`clone` if it is a copy made by `make_copy`, else refuse (never mutate the real repo)."""
    clone = clone.resolve()
    tmp = Path(tempfile.gettempdir()).resolve()
    marker = clone / _MARKER
    if (
        clone == ROOT
        or not clone.is_relative_to(tmp)
        or not marker.is_file()
        or Path(marker.read_text()).resolve() != clone.parent
        or not clone.parent.name.startswith("ebnb-mutants-")
    ):
        raise SystemExit(f"refusing to mutate {clone}: not a temporary copy made by this script")
    return clone


def run_mutant(clone: Path, mutant: dict, pristine: dict[str, str]) -> tuple[str, str]:
    clone = check_copy(clone)
    path = (clone / mutant["file"]).resolve()
    if not path.is_relative_to(clone):
        raise SystemExit(f"refusing to edit {path}: outside the copy")
    original = pristine.setdefault(mutant["file"], path.read_text())
    count = original.count(mutant["original"])
    if count != 1:  # the code moved on: the mutant needs a new string, and counts as not killed
        return "error", f"the original string occurs {count} times in {mutant['file']} (expected once)"
    path.write_text(original.replace(mutant["original"], mutant["replacement"]))
    env = {**os.environ, "PYTHONPATH": str(clone), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *mutant["tests"]],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = process.communicate()[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        path.write_text(original)
    lines = output.splitlines()
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    report = "\n".join(failed + [line for line in lines if line.strip()][-1:])
    # pytest's exit status: 0 all passed, 1 some failed; 2-5 (collection error, interrupted,
    # internal or usage error, no tests) say nothing about the mutant
    verdict = {0: "survived", 1: "killed"}.get(process.returncode, f"error (pytest exit {process.returncode})")
    return verdict, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant['name']:<48} {mutant['file']}")
        return 0
    unknown = set(args.names) - {m["name"] for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {sorted(unknown)}")
    chosen = [m for m in MUTANTS if not args.names or m["name"] in args.names]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the copy is removed on kill too
    clone = make_copy()
    pristine: dict[str, str] = {}
    survived = 0
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import ebnb; print(ebnb.__file__)"],
            cwd=clone,
            text=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(clone)},
            check=True,
        )
        assert Path(probe.stdout.strip()).resolve().is_relative_to(clone.resolve()), "the copy must import its own ebnb"
        print(f"copy: {clone}", flush=True)
        for mutant in chosen:
            start = time.perf_counter()
            verdict, tail = run_mutant(clone, mutant, pristine)
            survived += verdict != "killed"  # an error counts against the run too
            print(f"{mutant['name']:<48} {verdict:<9} {time.perf_counter() - start:6.1f} s", flush=True)
            print("    " + tail.replace("\n", "\n    "), flush=True)
    finally:
        shutil.rmtree(check_copy(clone).parent)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
