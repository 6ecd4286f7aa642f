#!/usr/bin/env bash
# Slurm's side of tools/bench row 6: N jobs of `true` through sbatch on a Slurm cluster started here on loopback.
#
# Usage: slurm.sh N
# Prints exactly one JSON line on stdout:
#   {"peer":"slurm","tasks":N,"seconds":S,"tasks_per_s":R,"version":"22.05.8", ...}
# or, when Slurm cannot run here, {"peer":"slurm","tasks":N,"error":"why"}. Always exits 0 (2 on a usage error).
# Logs go to stderr.
#
# Needs Debian's slurm-wlm and munge (tools/bootstrap installs them: 9 packages, about 4 MB); if they are missing
# the script installs them itself with apt-get install --no-install-recommends. Must run as root (slurmd starts the
# jobs as their submitting user and needs to be root for that).
#
# What it starts, all from one temporary directory and stopped on exit:
#   munged     with its own key and socket (not /etc/munge, not /run/munge);
#   slurmctld  on 127.0.0.1, a free port, SlurmctldHost=localhost;
#   slurmd     NODES of them (default 10, as Touchstone's row 6 runs 10 agents), NodeName=n1..n10, all with
#              NodeHostname=localhost, NodeAddr=127.0.0.1 and a free port each; NODES=1 runs one, NodeName=localhost.
#              Why 10 by default: slurmctld places no new job on a node while any job on it is COMPLETING (its
#              cg_node_bitmap), so with one node 1,000 short jobs wait on each other's completion (measured here:
#              about 37 jobs/s with one node, about 45-63 with ten, where submission is then the bound).
# Tuned for throughput as Slurm's docs allow (https://slurm.schedmd.com/high_throughput.html and slurm.conf(5)):
#   SchedulerType=sched/builtin (FIFO, no backfill pass), SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,
#   default_queue_depth=10000 and no `defer` (each submission tries to start its job at once); 80 CPUs declared in
#   all (8 per node with 10 nodes), with SlurmdParameters=config_overrides so that slurmd does not drain nodes that
#   claim more CPUs than the machine has: 1,000 one-CPU jobs are never held back by slots;
#   no accounting, no job completion log, no job accounting gathering, no cgroups (proctrack/linuxproc,
#   task/none: gVisor and containers without systemd have no usable cgroup plugin), logs at "error",
#   job output to /dev/null (no per-job file).
# Each job is `true; printf . >FIFO`: after `true` the job writes one byte to a named pipe that this script holds
# open, so the script awaits the jobs' ends by reading N bytes (a one-byte pipe write is atomic) instead of asking
# slurmctld over and over while it works. Then it asks squeue (every 20 ms) until slurmctld reports all N jobs
# COMPLETED, which is when the clock stops: Slurm's own completion bookkeeping is part of the measured time.
# Completed records stay for MinJobAge=300 s, longer than any run. Timing starts just before the first sbatch;
# submissions go out from SUBMITTERS parallel sbatch processes (default 4).
set -uo pipefail

N="${1:-}"
if ! [[ "$N" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: slurm.sh N (N >= 1 jobs)" >&2
  exit 2
fi
SUBMITTERS="${SUBMITTERS:-4}"
NODES="${NODES:-10}"
if ! [[ "$SUBMITTERS" =~ ^[1-9][0-9]*$ && "$NODES" =~ ^[1-9][0-9]*$ ]] || ((NODES > 80)); then
  echo "slurm.sh: SUBMITTERS must be >= 1 and NODES 1 to 80 (got SUBMITTERS=$SUBMITTERS NODES=$NODES)" >&2
  exit 2
fi
CPUS_PER_NODE=$((80 / NODES > 8 ? 80 / NODES : 8))

log() { printf 'bench-peers/slurm: %s\n' "$*" >&2; }

# result_error WHY: the one JSON line for a peer that could not run; then exit 0.
result_error() {
  python3 -c 'import json, sys; print(json.dumps({"peer": "slurm", "tasks": int(sys.argv[1]), "error": sys.argv[2]}))' \
    "$N" "$1"
  exit 0
}

if [ "$(id -u)" != 0 ]; then result_error "must run as root (slurmd starts jobs as their user)"; fi

# Install on demand (tools/bootstrap normally did this already).
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
  || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=120 --no-install-recommends slurm-wlm munge; } \
    >&2 || result_error "cannot install slurm-wlm and munge with apt-get"
fi
version="$(slurmctld -V 2>/dev/null | awk '{print $2}')"

dir="$(mktemp -d -t bench-slurm-XXXXXX)"
chmod 0755 "$dir"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# tail_log FILE: the last lines of a daemon's log, on one line, for an error message.
tail_log() { tail -n 5 "$1" 2>/dev/null | tr '\n' ' ' | cut -c1-600; }

# --- munged ----------------------------------------------------------------------------------------------------
mkdir -p "$dir/munge" "$dir/state"
chmod 0700 "$dir/munge"
head -c 1024 /dev/urandom >"$dir/munge/munge.key"
chmod 0400 "$dir/munge/munge.key"
munge_socket="$dir/munge/munge.socket"
# --force: munged otherwise refuses a socket directory that not every user can search (ours is private, 0700, and
# only root uses it). --foreground keeps it our child so the trap stops it.
munged --foreground --force --socket="$munge_socket" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
  --num-threads=4 >"$dir/munge/stdout.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do [ -S "$munge_socket" ] && break; kill -0 "${pids[0]}" 2>/dev/null || break; sleep 0.05; done
[ -S "$munge_socket" ] || result_error "munged did not start: $(tail_log "$dir/munge/munged.log") $(tail_log "$dir/munge/stdout.log")"

# --- slurm.conf ------------------------------------------------------------------------------------------------
ctld_port="$(free_port)"
node_lines=""
node_names=()
if ((NODES == 1)); then
  node_names=(localhost)
  node_lines="NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost Port=$(free_port) CPUs=$CPUS_PER_NODE State=UNKNOWN"
else
  for ((i = 1; i <= NODES; i++)); do
    node_names+=("n$i")
    node_lines+="NodeName=n$i NodeAddr=127.0.0.1 NodeHostname=localhost Port=$(free_port) CPUs=$CPUS_PER_NODE State=UNKNOWN"$'\n'
  done
fi
cat >"$dir/slurm.conf" <<CONF
ClusterName=bench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$munge_socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
SlurmctldDebug=error
SlurmdDebug=error
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobContainerType=job_container/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=10000
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MaxJobCount=100000
MinJobAge=300
MessageTimeout=30
ReturnToService=2
PropagateResourceLimits=NONE
$node_lines
PartitionName=bench Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF="$dir/slurm.conf"

# --- slurmctld and slurmd --------------------------------------------------------------------------------------
# -D: foreground (our child); -i: ignore state left by an earlier run (there is none: fresh directory).
slurmctld -D -i -f "$SLURM_CONF" >"$dir/slurmctld.stdout" 2>&1 &
pids+=("$!")
ctld_pid="$!"
deadline=$((SECONDS + 30))
until scontrol ping 2>/dev/null | grep -q 'is UP'; do
  kill -0 "$ctld_pid" 2>/dev/null \
    || result_error "slurmctld did not start: $(tail_log "$dir/slurmctld.log") $(tail_log "$dir/slurmctld.stdout")"
  ((SECONDS < deadline)) || result_error "slurmctld did not answer within 30 s: $(tail_log "$dir/slurmctld.log")"
  sleep 0.1
done
slurmd_pids=()
for node in "${node_names[@]}"; do
  slurmd -D -N "$node" -f "$SLURM_CONF" >"$dir/slurmd-$node.stdout" 2>&1 &
  pids+=("$!")
  slurmd_pids+=("$!")
done
deadline=$((SECONDS + 30))
until (($(sinfo -h -N -o '%T' 2>/dev/null | grep -Ec '^(idle|mixed|allocated)$') == NODES)); do
  for ((i = 0; i < NODES; i++)); do
    kill -0 "${slurmd_pids[i]}" 2>/dev/null || result_error "slurmd for node ${node_names[i]} did not start: \
$(tail_log "$dir/slurmd-${node_names[i]}.log") $(tail_log "$dir/slurmd-${node_names[i]}.stdout")"
  done
  ((SECONDS < deadline)) || result_error "nodes not idle within 30 s (states: $(sinfo -h -N -o '%N %T %E' 2>&1 | tr '\n' ' ')): $(tail_log "$dir/slurmd-${node_names[0]}.log")"
  sleep 0.1
done
log "slurm $version up: slurmctld on 127.0.0.1:$ctld_port, $NODES slurmd: $(sinfo -h -N -o '%N %c CPUs %T' | tr '\n' ' ')"

done_fifo="$dir/done.fifo"
mkfifo "$done_fifo"
# Read-write: opening never waits for a writer, and the pipe never reports end-of-file between jobs.
exec {done_fd}<>"$done_fifo"
job="true; printf . >$done_fifo"

# job_states: "COUNT STATE" lines for every job but the warm-up one.
job_states() {
  squeue -h -t all -o '%i %T' 2>/dev/null | awk -v warm="${warm:-none}" '$1 != warm {print $2}' | sort | uniq -c
}
# fail_if_any_ended_badly STATES: a job in a final state other than COMPLETED fails the run, with the counts.
fail_if_any_ended_badly() {
  if grep -Eq 'FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED' <<<"$1"; then
    result_error "jobs ended badly: $(tr '\n' ' ' <<<"$1")"
  fi
}
# await_job_ends COUNT SECONDS: reads COUNT bytes from the FIFO; every 2 s without all of them it checks for jobs
# that ended badly (they never write). Fails the run after SECONDS.
await_job_ends() {
  local want="$1" deadline=$((SECONDS + $2)) chunk
  while ((want > 0)); do
    chunk=""
    IFS= read -r -N "$want" -t 2 -u "$done_fd" chunk
    want=$((want - ${#chunk}))
    ((want > 0)) || break
    fail_if_any_ended_badly "$(job_states)"
    ((SECONDS < deadline)) || result_error "$want jobs did not finish within $2 s: $(tr '\n' ' ' <<<"$(job_states)")"
  done
}

# One warm-up job, so that the first measured job does not pay for first-use costs (the same is done for the others).
warm="$(sbatch --parsable -o /dev/null -e /dev/null --wrap "$job" 2>&1)" || result_error "sbatch failed: $warm"
IFS= read -r -N 1 -t 30 -u "$done_fd" _ \
  || result_error "warm-up job $warm did not run within 30 s (state $(squeue -h -j "$warm" -t all -o '%T %r' 2>&1)): $(tail_log "$dir/slurmd-${node_names[0]}.log")"

# --- the measured run ------------------------------------------------------------------------------------------
# submit_share K: submits jobs K, K+SUBMITTERS, ... (one sbatch process per job, as a user would).
submit_share() {
  local k="$1" i
  for ((i = k; i < N; i += SUBMITTERS)); do
    sbatch --parsable -o /dev/null -e /dev/null --wrap "$job" >/dev/null 2>>"$dir/submit-errors.log" \
      || echo "job $i" >>"$dir/submit-errors.log"
  done
}
start="$(date +%s.%N)"
submitters=()
for ((k = 0; k < SUBMITTERS; k++)); do submit_share "$k" & submitters+=("$!"); done
for pid in "${submitters[@]}"; do wait "$pid"; done
submitted="$(date +%s.%N)"
if [ -s "$dir/submit-errors.log" ]; then result_error "sbatch failed: $(tail_log "$dir/submit-errors.log")"; fi
await_job_ends "$N" 600
ran="$(date +%s.%N)"
# Every job has run `true`; done when slurmctld has recorded all of them COMPLETED.
deadline=$((SECONDS + 60))
while :; do
  states="$(job_states)"
  completed="$(awk '$2 == "COMPLETED" {print $1}' <<<"$states")"
  [ "${completed:-0}" -ge "$N" ] && break
  fail_if_any_ended_badly "$states"
  ((SECONDS < deadline)) || result_error "jobs ran but were not all COMPLETED within 60 s: $(tr '\n' ' ' <<<"$states")"
  sleep 0.02
done
end="$(date +%s.%N)"

python3 - "$N" "$start" "$submitted" "$end" "$version" "$SUBMITTERS" "$ran" <<'PY'
import json, sys
n, start, submitted, end = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ran = float(sys.argv[7])
seconds = end - start
print(json.dumps({"peer": "slurm", "tasks": n, "seconds": round(seconds, 3), "tasks_per_s": round(n / seconds, 1),
                  "version": sys.argv[5], "submit_seconds": round(submitted - start, 3), "ran_seconds": round(ran - start, 3),
                  "submitters": int(sys.argv[6])}))
PY
