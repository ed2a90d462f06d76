#!/usr/bin/env bash
# The dependency rule of docs/DESIGN.md: a file under src/ includes only from
# its own folder and the folders below it, never upward, and the CLI only the
# public header (and its own files). Exit 1 naming every include that breaks it.
#
#   scripts/check_layers.sh [SOURCE_DIR]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
# lowest first; folders on one line are one layer and may not include each other
layers=(
  "common"
  "io weights"
  "nn"
  "unet"
  "diffusion"
  "imgproc"
  "modes"
  "restore"
  "api"
  "train eval"
  "bench"
  "cli"
)
declare -A level
for i in "${!layers[@]}"; do for d in ${layers[$i]}; do level[$d]=$i; done; done
bad=0 n=0
while IFS= read -r f; do
  dir=${f#src/}; dir=${dir%%/*}
  [ -n "${level[$dir]+x}" ] || { echo "check_layers: $f: folder src/$dir is in no layer (add it to scripts/check_layers.sh and docs/DESIGN.md)"; bad=1; continue; }
  while IFS= read -r inc; do
    n=$((n + 1))
    to=${inc%%/*}
    [ "$inc" = "$to" ] && continue            # same folder, bare name
    [ "$to" = "$dir" ] || [ "$to" = .. ] && continue
    [ -n "${level[$to]+x}" ] || continue      # not a src/ folder
    if [ "$dir" = cli ]; then
      echo "check_layers: $f includes \"$inc\": the CLI uses the public header only"; bad=1; continue
    fi
    if [ "${level[$to]}" -ge "${level[$dir]}" ]; then
      echo "check_layers: $f (src/$dir, layer ${level[$dir]}) includes \"$inc\" (src/$to, layer ${level[$to]}): upward or sideways"; bad=1
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done < <(find src -name '*.[ch]' | sort)
[ $bad = 0 ] && echo "check_layers: $n includes, every one downward"
exit $bad
