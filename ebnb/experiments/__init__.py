"""The protocol steps of docs/protocol.md, each a function of frozen configs, cached in a Store.

Every unit of work (one dense run, one retrained ticket, one EB Exploit run, ...) has a
frozen config that names its result in the store (`units`). A `Step` is the units a grid
asks for and how to compute missing ones; it runs in shards (`ebnb.shards`: all missing
units of a shard trained together in one population, checkpointed while running), then the
step's function returns tidy DataFrames. Data flows one way: grid -> units -> shards ->
population -> store. The modules, lowest first (each imports only those above it):

- `paths`: where the store, the run outputs and the published results are;
- `grids`: `Grid`, its profiles, EB Exploit's parameters, run names;
- `units`: the unit dataclasses and the units a grid asks for;
- `states`: agent states as stored, their hash, the masks drawn from them;
- `dense_training`: training the shared dense runs;
- `step`: `Step`, and where a unit's result comes from (store, published, computed);
- `dense`: the dense runs' step and tables, experiment 1 (notebook 01);
- `tickets`: retrain, finetune, winning tickets, controls (notebooks 02, 03, 05);
- `exploit`: EB Exploit, online (notebook 04);
- `exploit_sweep`: EB Exploit swept over detector settings (notebook 06);
- `plan`: every step of one env and grid, in order.

The names the notebooks and the other modules use are imported here.
"""

from ebnb.experiments.dense import (
    baseline,
    dense_runs,
    dense_step,
    input_survival,
    layer_kept,
    mask_agreement,
    mask_similarity,
    training_curves,
)
from ebnb.experiments.exploit import eb_exploit
from ebnb.experiments.exploit_sweep import (
    eb_exploit_read_off,
    eb_exploit_sweep,
    eb_exploit_sweep_at,
    exploit_grid,
    sweep_at_steps,
    sweep_hypotheses,
)
from ebnb.experiments.grids import (
    EB_EXPLOIT_DEFAULTS,
    PROFILES,
    SMALL_XIS,
    Grid,
    check_dqn_overrides,
    check_eb_exploit,
    dqn_pairs,
    figure_note,
    grid,
    run_name,
)
from ebnb.experiments.paths import (
    PROJECT,
    default_figures,
    default_outputs,
    default_published,
    default_store,
    published_results,
    shown,
)
from ebnb.experiments.plan import STEP_NAMES, cache_status, held, steps
from ebnb.experiments.states import state_sha256
from ebnb.experiments.step import (
    SHARD_SIZE,
    Step,
    available,
    collect,
    input_stages,
    narrowed,
    published_view,
    to_compute,
)
from ebnb.experiments.tickets import (
    POPULATION,
    controlled_tickets,
    finetune,
    retrain,
    ticket_start,
    winning_tickets,
)
from ebnb.experiments.units import (
    CONVERGED,
    ControlRun,
    DenseRun,
    EBExploitRun,
    EBSweepRun,
    MaskTrace,
    SweepTicket,
    TicketRun,
    dense_units,
    env_id,
    expected_steps,
    longest_first,
    run_config,
)

__all__ = [
    "CONVERGED",
    "EB_EXPLOIT_DEFAULTS",
    "POPULATION",
    "PROFILES",
    "PROJECT",
    "SHARD_SIZE",
    "SMALL_XIS",
    "STEP_NAMES",
    "ControlRun",
    "DenseRun",
    "EBExploitRun",
    "EBSweepRun",
    "Grid",
    "MaskTrace",
    "Step",
    "SweepTicket",
    "TicketRun",
    "available",
    "baseline",
    "cache_status",
    "check_dqn_overrides",
    "check_eb_exploit",
    "collect",
    "controlled_tickets",
    "default_figures",
    "default_outputs",
    "default_published",
    "default_store",
    "dense_runs",
    "dense_step",
    "dense_units",
    "dqn_pairs",
    "eb_exploit",
    "eb_exploit_read_off",
    "eb_exploit_sweep",
    "eb_exploit_sweep_at",
    "env_id",
    "expected_steps",
    "exploit_grid",
    "figure_note",
    "finetune",
    "grid",
    "held",
    "input_stages",
    "input_survival",
    "layer_kept",
    "longest_first",
    "mask_agreement",
    "mask_similarity",
    "narrowed",
    "published_results",
    "published_view",
    "retrain",
    "run_config",
    "run_name",
    "shown",
    "state_sha256",
    "steps",
    "sweep_at_steps",
    "sweep_hypotheses",
    "ticket_start",
    "to_compute",
    "training_curves",
    "winning_tickets",
]
