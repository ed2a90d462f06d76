#!/usr/bin/env bash
# Data-parallel training under MPI (issue 19), 2 and 3 ranks on localhost:
#  - N ranks give the single-process run bit for bit: the checkpoint's checksum
#    (FNV-1a over params, EMA, Adam m and v, and the step) and the log's loss,
#    |g| and t columns are equal, with ResBlock dropout too;
#  - a checkpoint written by 2 ranks resumes in 1 process, and the reverse,
#    equal to the uninterrupted run; `info` shows how many ranks wrote it;
#  - killing one rank (SIGKILL) ends the whole job, and the last checkpoint
#    loads and resumes.
# Usage: test_train_mpi.sh path/to/diffrestore path/to/make_tiny_weights MPIEXEC
set -u
BIN="$1"
MK="$2"
MPIEXEC="$3"
MPIPID=
. "$(dirname "$0")/lib.sh"
tmp_make '[ -z "$MPIPID" ] || kill -9 "$MPIPID" 2>/dev/null'

# shared memory between the ranks; no single-copy (CMA) in containers
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
ROOT=()
[ "$(id -u)" -eq 0 ] && ROOT=(--allow-run-as-root)
# Under AddressSanitizer (scripts/test.sh --sanitize), Open MPI's own
# allocations in MPI_Init and its dlopen'ed components are reported as leaks
# at exit, from frames LeakSanitizer cannot name (the components are unloaded
# by then), so a suppression cannot match them. The ranks run with leak
# checking off; everything else (ASan's memory errors, UBSan) stays on, and
# the same training code is leak-checked by test_train and the plain runs here.
MPI_ASAN="${ASAN_OPTIONS:+${ASAN_OPTIONS}:}detect_leaks=0"
run_mpi() { # run_mpi N THREADS args...
  local n="$1" th="$2"
  shift 2
  ASAN_OPTIONS="$MPI_ASAN" "$MPIEXEC" "${ROOT[@]}" --oversubscribe -np "$n" -x OMP_NUM_THREADS="$th" "$BIN" "$@"
}

mkdir -p "$TMP/data"
for s in 1 2 3; do "$MK" --image "$TMP/data/im$s.png" 48 40 3 8 "$s" || bad "make image $s"; done
CFG="base=8,mult=1,2,res=1,attn=1,groups=4"
T=(train -q --config "$CFG" --data "$TMP/data" --patch 16)
sum() { "$BIN" info "$1" | sed -n 's/^  checksum = //p'; }
cols() { cut -d, -f1-6 "$1"; } # step, loss, loss_smooth, lr, grad_norm, t_mean
equal_runs() { # equal_runs A.ckpt B.ckpt description
  local a b
  a=$(sum "$1")
  b=$(sum "$2")
  if [ -n "$a" ] && [ "$a" = "$b" ]; then ok; else bad "$3: checksum '$a' != '$b'"; fi
  if [ -s "$1.csv" ] && [ "$(cols "$1.csv")" = "$(cols "$2.csv")" ]; then ok; else bad "$3: logs differ"; fi
}

# --- 2 ranks x 1 thread = 1 process x 2 threads (batch 8; the 2 ranks' default micro-batch is 8 / 2)
expect 0 "1 process" env OMP_NUM_THREADS=2 "$BIN" "${T[@]}" --mode superres --out "$TMP/s1.ckpt" --steps 3 --batch 8 --micro-batch 4
expect 0 "2 ranks" run_mpi 2 1 "${T[@]}" --mode superres --out "$TMP/s2.ckpt" --steps 3 --batch 8
equal_runs "$TMP/s1.ckpt" "$TMP/s2.ckpt" "superres, 2 ranks vs 1 process"
expect 0 "info on the 2-rank checkpoint" "$BIN" info "$TMP/s2.ckpt"
contains "$TMP/out" "checkpoint written by 2 ranks" "info shows 2 ranks"
contains "$TMP/out" "micro_batch = 4" "info shows the micro-batch"
expect 0 "info on the 1-process checkpoint" "$BIN" info "$TMP/s1.ckpt"
contains "$TMP/out" "checkpoint written by 1 rank" "info shows 1 rank"
# the runs differ from a run with another batch: the comparison can fail
expect 0 "1 process, batch 6" env OMP_NUM_THREADS=2 "$BIN" "${T[@]}" --mode superres --out "$TMP/s6.ckpt" --steps 3 --batch 6
[ "$(sum "$TMP/s1.ckpt")" != "$(sum "$TMP/s6.ckpt")" ] && ok || bad "batch 6 gave batch 8's checkpoint"
expect 0 "info on a lone run" "$BIN" info "$TMP/s6.ckpt"
contains "$TMP/out" "micro_batch = 6" "alone, the default micro-batch is the whole batch"

# --- 3 ranks: ranges that are not one subtree each (batch 6, micro-batch 1: 2 + 2 + 2 of 6 leaves)
expect 0 "1 process, inpaint" env OMP_NUM_THREADS=1 "$BIN" "${T[@]}" --mode inpaint --out "$TMP/i1.ckpt" --steps 2 --batch 6 --micro-batch 1
expect 0 "3 ranks, inpaint" run_mpi 3 1 "${T[@]}" --mode inpaint --out "$TMP/i3.ckpt" --steps 2 --batch 6 --micro-batch 1
equal_runs "$TMP/i1.ckpt" "$TMP/i3.ckpt" "inpaint, 3 ranks vs 1 process"

# --- ResBlock dropout: the mask follows the sample's index in the global batch,
# so 3 ranks still give the process's run (batch 6, micro-batch 2: one each)
D=(--mode inpaint --steps 2 --batch 6 --micro-batch 2 --dropout 0.3)
expect 0 "1 process, dropout" env OMP_NUM_THREADS=2 "$BIN" "${T[@]}" "${D[@]}" --out "$TMP/d1.ckpt"
expect 0 "3 ranks, dropout" run_mpi 3 1 "${T[@]}" "${D[@]}" --out "$TMP/d3.ckpt"
equal_runs "$TMP/d1.ckpt" "$TMP/d3.ckpt" "dropout 0.3, 3 ranks vs 1 process"
expect 0 "1 process, no dropout" env OMP_NUM_THREADS=2 "$BIN" "${T[@]}" "${D[@]}" --dropout 0 --out "$TMP/d0.ckpt"
[ "$(sum "$TMP/d1.ckpt")" != "$(sum "$TMP/d0.ckpt")" ] && ok || bad "dropout 0.3 gave dropout 0's checkpoint"
# --- --augment dihedral: the turn is drawn from the sample's own stream, so 3 ranks too
A=(--mode superres --steps 2 --batch 6 --micro-batch 2 --augment dihedral)
expect 0 "1 process, dihedral" env OMP_NUM_THREADS=2 "$BIN" "${T[@]}" "${A[@]}" --out "$TMP/a1.ckpt"
expect 0 "3 ranks, dihedral" run_mpi 3 1 "${T[@]}" "${A[@]}" --out "$TMP/a3.ckpt"
equal_runs "$TMP/a1.ckpt" "$TMP/a3.ckpt" "dihedral, 3 ranks vs 1 process"
expect 0 "1 process, flip" env OMP_NUM_THREADS=2 "$BIN" "${T[@]}" "${A[@]}" --augment flip --out "$TMP/a0.ckpt"
[ "$(sum "$TMP/a1.ckpt")" != "$(sum "$TMP/a0.ckpt")" ] && ok || bad "dihedral gave flip's checkpoint"

# --- too many ranks for the micro-batches: refused by every rank, the job ends
expect 1 "3 ranks, 2 micro-batches" run_mpi 3 1 "${T[@]}" --mode inpaint --out "$TMP/x.ckpt" --steps 2 --batch 4 --micro-batch 2
contains "$TMP/err" "only 2 micro-batches" "too many ranks named"

# --- resume across N: 2 ranks then 1 process, and 1 process then 2 ranks
expect 0 "uninterrupted, 4 steps" env OMP_NUM_THREADS=1 "$BIN" "${T[@]}" --mode colorize --out "$TMP/c.ckpt" --steps 4 --batch 4 --micro-batch 1
expect 0 "2 ranks to step 2" run_mpi 2 1 "${T[@]}" --mode colorize --out "$TMP/c21.ckpt" --steps 2 --batch 4 --micro-batch 1
expect 0 "then 1 process to step 4" env OMP_NUM_THREADS=1 "$BIN" "${T[@]}" --resume "$TMP/c21.ckpt" --out "$TMP/c21.ckpt" --steps 4
equal_runs "$TMP/c.ckpt" "$TMP/c21.ckpt" "resume: 2 ranks then 1 process"
expect 0 "1 process to step 2" env OMP_NUM_THREADS=1 "$BIN" "${T[@]}" --mode colorize --out "$TMP/c12.ckpt" --steps 2 --batch 4 --micro-batch 1
expect 0 "then 2 ranks to step 4" run_mpi 2 1 "${T[@]}" --resume "$TMP/c12.ckpt" --out "$TMP/c12.ckpt" --steps 4
equal_runs "$TMP/c.ckpt" "$TMP/c12.ckpt" "resume: 1 process then 2 ranks"
expect 0 "info after the 2-rank resume" "$BIN" info "$TMP/c12.ckpt"
contains "$TMP/out" "checkpoint written by 2 ranks" "ranks of the last writer"

# --- SIGKILL one rank: the job ends, the last checkpoint loads and resumes
# (mpirun itself in the background, not a function: $! is its pid, the ranks its children)
ASAN_OPTIONS="$MPI_ASAN" "$MPIEXEC" "${ROOT[@]}" --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$BIN" "${T[@]}" --mode superres \
  --out "$TMP/k.ckpt" --steps 100000 --batch 2 --micro-batch 1 --checkpoint-every 1 >"$TMP/kout" 2>"$TMP/kerr" &
MPIPID=$!
for _ in $(seq 600); do [ -s "$TMP/k.ckpt" ] && break; sleep 0.2; done
exists "$TMP/k.ckpt" "a checkpoint before the kill"
ranks=$(pgrep -P "$MPIPID" -f "$TMP/k.ckpt" | tr '\n' ' ')
[ "$(echo $ranks | wc -w)" = 2 ] && ok || bad "want 2 rank processes under mpirun, found '$ranks'"
victim=${ranks%% *}
[ -n "$victim" ] && ok || bad "no rank process found under mpirun ($MPIPID)"
[ -n "$victim" ] && kill -9 "$victim"
ended=0
for _ in $(seq 600); do kill -0 "$MPIPID" 2>/dev/null || { ended=1; break; }; sleep 0.1; done
[ "$ended" = 1 ] && ok || bad "mpirun still running 60 s after a rank was killed"
wait "$MPIPID"
code=$?
MPIPID=
[ "$code" -ne 0 ] && ok || bad "the job exited 0 after a rank was killed"
left= # up to 3 s for the ranks to exit after mpirun returns
for _ in $(seq 30); do
  left=$(pgrep -f "$TMP/k.ckpt" | tr '\n' ' ')
  [ -z "$left" ] && break
  sleep 0.1
done
[ -z "$left" ] && ok || bad "a rank outlived the job ($left)"
contains "$TMP/kerr" "exited on signal 9" "mpirun names the killed rank"
expect 0 "the checkpoint loads" "$BIN" info "$TMP/k.ckpt"
contains "$TMP/out" "checkpoint written by 2 ranks" "the killed job's checkpoint"
step=$(sed -n 's/^  step = //p' "$TMP/out")
[ -n "$step" ] && [ "$step" -ge 1 ] && ok || bad "no step in the killed job's checkpoint"
expect 0 "resume after the kill, 2 ranks" run_mpi 2 1 "${T[@]}" --resume "$TMP/k.ckpt" --out "$TMP/k.ckpt" --steps $((step + 1))
expect 0 "info after the resume" "$BIN" info "$TMP/k.ckpt"
contains "$TMP/out" "  step = $((step + 1))" "resumed one step further"

finish test_train_mpi
