"""Checkpoints inside long work: a shard saves its state every `every` seconds and a rerun
continues from the last one instead of starting over.

A checkpoint is one file, written to a temporary sibling, fsynced and renamed into place, so
it is either the previous checkpoint or the new one, never half of one. Its first 64 bytes
are the sha256 of the rest: a truncated or damaged file is detected, discarded and the work
starts over; it is never loaded as data. The payload is `torch.save` of a dict (population
state from `Population.state_dict`, plus the caller's own bookkeeping); it is read back with
pickle, so a checkpoint directory must be as trusted as the code.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import secrets
import time
from pathlib import Path

import torch

from ebnb.population import Population, PopulationResult

log = logging.getLogger(__name__)
DEFAULT_EVERY = 120.0  # seconds between checkpoints of a running shard


class Checkpoint:
    """The resumable state of one piece of work, at `path` (None: never saved)."""

    def __init__(self, path: Path | None, every: float = DEFAULT_EVERY):
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not every > 0:
            raise ValueError(f"checkpoint_every: must be a number of seconds > 0, got {every!r}")
        self.path, self.every = path, float(every)
        self.saves = 0
        self.resumed = False  # set when `load` returned a saved state
        self._last = time.monotonic()

    def load(self) -> dict | None:
        """The saved state, or None if there is none or it is damaged (then it is removed)."""
        if self.path is None or not self.path.exists():
            return None
        data = self.path.read_bytes()
        digest, payload = data[:64], data[64:]
        if digest != hashlib.sha256(payload).hexdigest().encode():
            log.warning("discarding damaged checkpoint %s", self.path)
            self.clear()
            return None
        log.info("resuming from checkpoint %s", self.path)
        self.resumed = True
        return torch.load(io.BytesIO(payload), weights_only=False)

    def save(self, state: dict) -> None:
        """Write `state` atomically (replacing the previous checkpoint)."""
        if self.path is None:
            return
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = buffer.getvalue()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".tmp-{self.path.name}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with open(tmp, "wb") as file:
                file.write(hashlib.sha256(payload).hexdigest().encode() + payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self.saves += 1
        self._last = time.monotonic()

    def clear(self) -> None:
        """Remove the checkpoint (the work it belongs to is finished and stored)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def run(self, population: Population, phase: str, job: dict, tick=None) -> PopulationResult:
        """`population.run(tick)`, saving {phase, job, population state} every `every`
        seconds, after `tick` (if given) has run.

        `job` is the caller's own state that its callbacks and `tick` mutate (masks drawn so
        far, units admitted, ...); `phase` names where in the caller's work this population is.
        """

        def tick_and_save(p: Population) -> None:
            if tick is not None:
                tick(p)
            if self.path is not None and time.monotonic() - self._last >= self.every:
                self.save({"phase": phase, "job": job, "population": p.state_dict()})

        return population.run(tick=tick_and_save)
