"""The shared dense runs as the notebooks read them: training curves, baselines, and
experiment 1 (the similarity of the masks drawn along each run)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ebnb import masks
from ebnb.experiments.dense_training import compute_dense
from ebnb.experiments.grids import Grid
from ebnb.experiments.step import Step, step_results
from ebnb.experiments.units import dense_units, run_config
from ebnb.published import Published
from ebnb.store import Store


def dense_step(env: str, g: Grid) -> Step:
    """The shared dense runs of `g.seeds`, which every other step reads."""
    return Step("dense runs", "dense", tuple(dense_units(env, g)), compute_dense)


def dense_runs(
    env: str,
    g: Grid,
    store: Store,
    published: Published | None = None,
    progress: bool = False,
    parts: tuple[str, ...] | None = None,
) -> list[dict]:
    """The shared dense runs of `g.seeds` as `step.published_view` gives them (`parts` of it;
    trained together where neither the store nor `published` holds them)."""
    return step_results(store, dense_step(env, g), published, progress, parts)


def training_curves(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> pd.DataFrame:
    """Per-episode log of the dense runs: seed, episode, return, length, epsilon."""
    runs = dense_runs(env, g, store, published, progress, ("episodes",))
    return pd.concat([r["episodes"].assign(seed=s) for s, r in zip(g.seeds, runs)], ignore_index=True)


def baseline(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> pd.DataFrame:
    """Unpruned baseline per seed: converged (bool), converged_episode (its training length;
    the episode cap where it never converged) and test_return (mean greedy return)."""
    runs = dense_runs(env, g, store, published, progress, ("baseline",))
    return pd.concat([r["baseline"] for r in runs], ignore_index=True)


def mask_similarity(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> dict[float, pd.DataFrame]:
    """Experiment 1: per P, the seeds' mean similarity (1 - Hamming) between masks drawn at
    episodes 0, mask_every, ...; a square DataFrame indexed by episode on both axes."""
    from scipy.spatial.distance import squareform

    runs = [r["disagreements"] for r in dense_runs(env, g, store, published, progress, ("disagreements",))]
    episodes = runs[0]["episodes"]
    out = {}
    for fraction in g.fractions:
        matrices = [masks.similarity_from_counts(squareform(r[f"P{fraction}"]), int(r["n_weights"])) for r in runs]
        out[fraction] = pd.DataFrame(np.mean(matrices, axis=0), index=episodes, columns=episodes)
    return out


def input_survival(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> pd.DataFrame:
    """Per seed, P, mask episode and input feature: the share of that input's outgoing
    first-layer weights that the dense run's L1 mask keeps (the masks of experiment 1).
    Columns: seed, P, episode, feature (`envs.observation_names`), kept."""
    from ebnb.envs import observation_names

    runs = dense_runs(env, g, store, published, progress, ("input_survival",))
    gym_id = run_config(env, g).env_id
    rows = []
    for seed, run in zip(g.seeds, runs):
        view = run["input_survival"]
        for fraction in g.fractions:
            kept = view[f"P{fraction}"]
            names = observation_names(gym_id, kept.shape[1])
            rows.append(
                pd.DataFrame(
                    {
                        "seed": seed,
                        "P": fraction,
                        "episode": np.repeat(view["episodes"], kept.shape[1]),
                        "feature": np.tile(names, len(kept)),
                        "kept": kept.reshape(-1),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def layer_kept(survival: np.ndarray, hidden: int, n_weights: int, fraction: float) -> tuple[np.ndarray, list[int]]:
    """(kept shares [episodes, 2], layer sizes [2]) of a dense run's masks at P = `fraction`:
    the first weight matrix ([hidden, inputs]: its kept share is the mean of `survival`,
    `input_survival`'s [episodes, inputs]) and all later ones together, whose kept count is the
    mask's, N - round(P N), less the first layer's. Exact for a network of two weight matrices
    (Acrobot); CartPole's last two (128 x 128 and 2 x 128) are pooled."""
    survival = np.asarray(survival, dtype=np.float64)
    first = hidden * survival.shape[1]
    kept_first = np.rint(survival.sum(axis=1) * hidden)
    kept_rest = n_weights - masks.n_pruned(fraction, n_weights) - kept_first
    sizes = [first, n_weights - first]
    return np.stack([kept_first / sizes[0], kept_rest / sizes[1]], axis=1), sizes


def mask_agreement(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> dict[float, dict[str, np.ndarray]]:
    """Experiment 1 per seed, with the agreement chance alone gives: per P, "episodes" of the
    masks, and per seed [seeds, T, T] "similarity" (1 - Hamming, as `mask_similarity`) and
    "chance", the share two independent masks with the two masks' per-layer densities
    (`layer_kept`) agree on (`masks.chance_agreement`)."""
    from scipy.spatial.distance import squareform

    runs = dense_runs(env, g, store, published, progress, ("disagreements", "input_survival"))
    hidden = run_config(env, g).hidden[0]
    out = {}
    for fraction in g.fractions:
        similarity, chance = [], []
        for run in runs:
            counts, n_weights = run["disagreements"], int(run["disagreements"]["n_weights"])
            similarity.append(masks.similarity_from_counts(squareform(counts[f"P{fraction}"]), n_weights))
            kept, sizes = layer_kept(run["input_survival"][f"P{fraction}"], hidden, n_weights, fraction)
            chance.append(masks.chance_agreement(kept[:, None, :], kept[None, :, :], sizes))
        out[fraction] = {
            "episodes": runs[0]["disagreements"]["episodes"],
            "similarity": np.stack(similarity),
            "chance": np.stack(chance),
        }
    return out
