# Shared helpers of the shell tests. Source first, then call tmp_make.
# Each check counts one pass or one failure; finish prints the closing line
# "NAME: N passed, N failed" and returns non-zero on any failure (or no check).
pass=0
fail=0
# tmp_make [CLEANUP]: TMP, a new scratch directory that this shell removes
# (after running CLEANUP) when it exits. Only this shell: a job started with
# & is a copy of the shell, EXIT trap included, until it execs, and a signal
# in that window makes the copy run the trap. The random-signal batch of
# test_cli_restore hit it and lost TMP under its remaining checks.
tmp_make() {
  TMP=$(mktemp -d) || exit 1
  tmp_owner=$BASHPID
  tmp_cleanup=${1:-}
  trap '[ "$BASHPID" = "$tmp_owner" ] && { eval "$tmp_cleanup"; rm -rf "$TMP"; }' EXIT
}
ok() { pass=$((pass + 1)); }
# The commands' environment made plain: no weights or shard variables from
# the caller, two threads unless set.
cli_clean_env() {
  unset DIFFRESTORE_WEIGHTS SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_STEP
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
}
# size_is FILE "WxH C D" description: the image's layout, read by make_tiny_weights ($MK)
size_is() {
  local got
  got=$("$MK" --size "$1" 2>&1)
  if [ "$got" = "$2" ]; then ok; else bad "$3: $1 is '$got', want '$2'"; fi
}
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# expect CODE "description" cmd...   (stdout in $TMP/out, stderr in $TMP/err)
expect() {
  local want="$1" what="$2"
  shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, want $want ($(head -c 600 "$TMP/err"))"; fi
}
contains() { # contains FILE STRING description
  if grep -qF -- "$2" "$1"; then ok; else bad "$3: '$2' not in $(head -c 600 "$1")"; fi
}
lacks() { # lacks FILE STRING description
  if grep -qF -- "$2" "$1"; then bad "$3: '$2' found in $(head -c 600 "$1")"; else ok; fi
}
# refuses_to_write OUT "description" NAME-IN-MESSAGE cmd...: cmd exits
# non-zero, its stderr names NAME, and neither OUT nor OUT.tmp is left behind
# (OUT is removed first).
refuses_to_write() {
  local out="$1" what="$2" name="$3"
  shift 3
  rm -f "$out"
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" -ne 0 ]; then ok; else bad "$what: exit 0"; fi
  contains "$TMP/err" "$name" "$what: the message names $name"
  if [ -e "$out" ] || [ -e "$out.tmp" ]; then bad "$what: left an output"; else ok; fi
}
exists() { if [ -s "$1" ]; then ok; else bad "$2: $1 missing"; fi; }
absent() { if [ ! -e "$1" ]; then ok; else bad "$2: $1 exists"; fi; }
same() { if cmp -s "$1" "$2"; then ok; else bad "$3: $1 and $2 differ"; fi; }
finish() {
  echo "$1: $pass passed, $fail failed"
  [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
}
