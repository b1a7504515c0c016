#!/usr/bin/env bash
# Store the source notebooks (notebooks/*.ipynb, see .gitattributes) through nbstripout, so that
# running and saving one in Jupyter changes no tracked file: outputs, execution counts and the
# kernel's language_info never reach git (the kernelspec committed is ipykernel's own, as Jupyter writes it). Cell ids are kept.
# Run once per clone, with the project's virtualenv active (the filter runs its python).
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(python -c 'import sys; print(sys.executable)')
python -c 'import nbstripout' || { echo "nbstripout is not installed: pip install -r requirements.lock" >&2; exit 1; }
git config filter.nbstripout.clean "\"$python\" -m nbstripout --keep-id"
git config filter.nbstripout.smudge cat
git config filter.nbstripout.required true
git config filter.nbstripout.extrakeys "metadata.language_info"
git config diff.ipynb.textconv "\"$python\" -m nbstripout --keep-id -t"
