"""Re-key results stored under the hash scheme before `ebnb.identity` (`ebnb.rekey`).

    python tools/rekey.py                  # the project's results/
    python tools/rekey.py --store PATH     # a store (default of the pipeline: $EBNB_STORE or store/)

Repeatable: what is keyed already is left as it is. results/ is replaced in one transaction,
each unit's parts byte for byte the same; in a store each old result moves to its current key
and its old directory is removed once the new one is complete; one that cannot move (another
result holds its key) is kept and named. Exit status 1 if any was kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ebnb import rekey
from ebnb.experiments import PROJECT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="re-key this store instead of results/")
    parser.add_argument(
        "--results", type=Path, default=PROJECT / "results", help="the published set (default: results/)"
    )
    args = parser.parse_args(argv)
    if args.store is None:
        changed = rekey.results(args.results)
        print(f"[rekey] {args.results}: " + (f"{len(changed)} files rewritten" if changed else "keyed already"))
        return 0
    report = rekey.store(args.store)
    print(
        f"[rekey] {args.store}: {len(report['moved'])} results moved to their current keys, {len(report['kept'])} kept"
    )
    for line in report["kept"]:
        print(f"  kept {line}")
    return 1 if report["kept"] else 0


if __name__ == "__main__":
    sys.exit(main())
