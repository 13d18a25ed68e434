# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse .venv in the
# checkout and install seispinn with its pinned torch. Needs only Python >= 3.10.
#   SEISPINN_TORCH   torch requirement (default 2.13.0, a CPU build on CPU machines;
#                    set e.g. SEISPINN_TORCH=2.13.0+cu126 with a matching index for GPUs)
#   SEISPINN_TORCH_INDEX  extra package index for torch, e.g.
#                    https://download.pytorch.org/whl/cpu on a CPU machine whose pip
#                    would otherwise resolve torch==2.13.0 to PyPI's CUDA build
#   SEISPINN_PYTHON  interpreter used to create the venv (default python3)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${SEISPINN_PYTHON:-python3}"
torch_req="torch==${SEISPINN_TORCH:-2.13.0}"

if [ ! -x "$venv/bin/python" ]; then
    echo "seispinn: creating $venv" >&2
    "$py" -m venv "$venv"
fi
# Reinstall only when the dependencies or the torch pin changed.
stamp="$venv/.seispinn-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-$torch_req"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "seispinn: installing $torch_req and seispinn into $venv" >&2
    # torch first and pinned, so nothing later can pull a multi-GB CUDA build.
    index=()
    [ -n "${SEISPINN_TORCH_INDEX:-}" ] && index=(--extra-index-url "$SEISPINN_TORCH_INDEX")
    "$venv/bin/python" -m pip install -q --disable-pip-version-check ${index[@]+"${index[@]}"} "$torch_req"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[test]"
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export MPLBACKEND="${MPLBACKEND:-Agg}"
cd "$root"
