"""The notebooks' setup cell: their parameters checked, and the grid, store and folders they use.

Papermill and Jupyter run a notebook without `pipeline.py`, so a notebook checks its own
parameters here, before it computes or writes anything, with a ValueError naming the
parameter. Papermill's ``-p`` passes text (only ``True``, ``False``, ``None`` and numbers are
converted); `use_published` takes ``"true"``/``"false"`` too, and a list passed as text is
refused with the way to pass a list (``-y``). Relative `store_dir` and `figures_dir` are
relative to the project root, whichever folder the kernel runs in (Jupyter starts it in
notebooks/, papermill in its own working folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ebnb import experiments
from ebnb.config import dqn_config, placement
from ebnb.envs import canonical_env
from ebnb.published import Published
from ebnb.store import Store

LISTS = (
    "seeds",
    "fractions",
    "prune_episodes",
    "control_episodes",
    "sparse_fractions",
    "controls",
    "xis",
    "windows",
    "detectors",
    "starts",
)


class Setup(NamedTuple):
    """What a notebook's later cells use."""

    env: str  # the canonical name (`ebnb.envs.canonical_env`)
    env_id: str
    grid: experiments.Grid
    store: Store
    published: Published | None
    figures: Path
    note: str | None  # on every figure that is not the thesis grid


def setup(
    env,
    profile,
    store_dir=None,
    figures_dir=None,
    use_published=True,
    grid: dict | None = None,
    settings: dict | None = None,
    device="cpu",
    arithmetic=None,
    dqn: dict | None = None,
    steps: tuple[str, ...] = (),
) -> Setup:
    """Check a notebook's parameters and return its `Setup`. `grid`: its grid parameters (None
    keeps the profile's value); `settings`: EB Exploit's or its sweep's, which name the run's
    figures folder as the grid's changes do; `device`, `arithmetic` (`ebnb.config.placement`)
    and `dqn` (DQN config overrides by field name): how the agents train, in the grid's `dqn`;
    `steps`: the protocol steps the notebook reads (`experiments.STEP_NAMES`), which
    `pipeline.py` reads from this call and computes before the notebook runs."""
    for step in steps:
        if step not in experiments.STEP_NAMES:
            raise ValueError(f"steps: unknown {step!r}; allowed: {', '.join(experiments.STEP_NAMES)}")
    for name, value in {**(grid or {}), **(settings or {})}.items():
        check_list(name, value)
    if dqn is not None and not isinstance(dqn, dict):
        raise ValueError(f"dqn: must be a dict of DQN config fields, e.g. {{'lr': 0.001}}, got {dqn!r}")
    for name in set(dqn or ()) & {"device", "arithmetic"}:
        raise ValueError(f"dqn: {name} is a parameter of its own; give {name}={dqn[name]!r}, not dqn={{{name!r}: ...}}")
    g = experiments.grid(profile, **(grid or {}), dqn={**(dqn or {}), **placement(device, arithmetic)})
    experiments.run_config(env, g)  # the overrides' values, checked before anything runs
    settings = settings or {}
    env = canonical_env(env)
    store = Store(folder("store_dir", store_dir) or experiments.default_store())
    published = experiments.published_results() if check_bool("use_published", use_published) else None
    figures = folder("figures_dir", figures_dir) or experiments.default_figures(
        experiments.run_name(profile, g, **settings)
    )
    note = experiments.figure_note(profile, g, **settings)
    return Setup(env, dqn_config(env).env_id, g, store, published, figures, note)


def check_bool(name: str, value) -> bool:
    """`value` as a bool: True, False, or the text 'true'/'false' in any case; else a ValueError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{name}: must be True or False (or the text 'true'/'false'), got {value!r}")


def check_list(name: str, value) -> None:
    """A ValueError for a list parameter given as text (papermill's -p), saying how to pass a list."""
    if name in LISTS and isinstance(value, str):
        shown = value if value.startswith("[") else f"[{value}]"
        raise ValueError(
            f"{name}: must be a list, got the text {value!r}; papermill's -p passes text, "
            f'so pass a list with -y "{name}: {shown}"'
        )


def folder(name: str, value) -> Path | None:
    """`store_dir` or `figures_dir`: None, or a path (relative: to the project root); else a ValueError."""
    if value is None:
        return None
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ValueError(f"{name}: must be a folder path (text) or None, got {value!r}")
    return experiments.PROJECT / Path(value).expanduser()
