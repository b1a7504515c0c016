#!/usr/bin/env bash
# Store the source notebooks (notebooks/*.ipynb, see .gitattributes) through nbstripout, so that
# running and saving one in Jupyter changes no tracked file: outputs, execution counts and the
# kernel's language_info never reach git (the kernelspec committed is ipykernel's own, as Jupyter writes it). Cell ids are kept.
# And Jupyter saves them as the filter writes them (ebnb.jupyter.clean_before_save, a pre-save hook
# of jupyter_server's contents manager), so that plain `git status` stays clean after a save too:
# configured for the Jupyter of this environment, in <sys.prefix>/etc/jupyter/jupyter_server_config.json
# (or in the first folder of $JUPYTER_CONFIG_PATH, where Jupyter looks first). Jupyter reads no
# config from the folder it is started in, so this holds wherever it is started.
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
python - <<'PY'
import json, os, sys
from pathlib import Path

extra = os.environ.get("JUPYTER_CONFIG_PATH")
file = Path(extra.split(os.pathsep)[0] if extra else Path(sys.prefix, "etc", "jupyter"), "jupyter_server_config.json")
config = json.loads(file.read_text()) if file.exists() else {}  # kept: what else is configured there
config.setdefault("ContentsManager", {})["pre_save_hook"] = "ebnb.jupyter.clean_before_save"
file.parent.mkdir(parents=True, exist_ok=True)
file.write_text(json.dumps(config, indent=2) + "\n")
print(f"Jupyter saves source notebooks as git stores them: {file}")
PY
