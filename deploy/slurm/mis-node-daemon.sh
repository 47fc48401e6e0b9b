#!/bin/bash
# Starts and stops the MIS node daemon (`mis enforcer`) around Slurm jobs, for sites that want it
# running only while jobs are on the node; prolog.sh and epilog.sh call it as root. A site that
# runs the daemon permanently (the systemd unit, enabled) needs neither: the prolog finds it
# running and leaves it be, and the epilog stops only a daemon a prolog started.
#
#   mis-node-daemon.sh start JOBID   # the daemon is running and serving its socket afterwards
#   mis-node-daemon.sh stop JOBID    # the job is off the list; the last job off stops the daemon
#
# Idempotent and safe when several jobs start or end at once on one node: every step holds a lock,
# and the daemon is shared by a list of the jobs that use it (one file per job in $MIS_JOBS_DIR).
# With systemd (booted) and the unit installed it uses the unit; otherwise it starts
# `mis enforcer` in the background itself, with a pid file.
set -euo pipefail

# Site settings (the environment may override each).
MIS_BIN=${MIS_BIN:-/usr/local/bin/mis}                     # the `mis` command
MIS_CONFIG_FILE=${MIS_CONFIG_FILE:-/etc/mis/enforcer.toml}   # its [grpc] unix_socket_path is MIS_SOCKET
MIS_SOCKET=${MIS_SOCKET:-/run/mis/mis.sock}
MIS_STATE_LOCK=${MIS_STATE_LOCK:-/var/lib/mis/enforcer.lock} # [paths] state_dir/enforcer.lock
MIS_UNIT=${MIS_UNIT:-mis-enforcer.service}                 # deploy/systemd/ installs it
MIS_STATE=${MIS_STATE:-/run/mis-slurm}   # pid file, lock, job list (not in /run/mis: the unit removes its RuntimeDirectory when it stops)
MIS_LOG=${MIS_LOG:-/var/log/mis/enforcer.log}              # the daemon's stderr, without systemd
MIS_START_TIMEOUT=${MIS_START_TIMEOUT:-60}                 # seconds to wait for the socket

say() { printf 'mis-node-daemon: %s\n' "$*" >&2; }

action=${1:-}
job=${2:-${SLURM_JOB_ID:-}}
if [ -z "$action" ] || ! [[ $job =~ ^[0-9_]+$ ]]; then
  say "usage: $0 start|stop JOBID (a Slurm job id)"
  exit 2
fi

MIS_JOBS_DIR="$MIS_STATE/jobs"
pid_file="$MIS_STATE/enforcer.pid"
started_marker="$MIS_STATE/started-by-prolog"
mkdir -p "$MIS_JOBS_DIR"
exec 9>"$MIS_STATE/lock"
flock 9

use_systemd() {
  [ -d /run/systemd/system ] && systemctl cat "$MIS_UNIT" >/dev/null 2>&1
}

own_pid() {
  local pid
  [ -f "$pid_file" ] || return 1
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

daemon_running() {
  if use_systemd; then
    systemctl is-active --quiet "$MIS_UNIT"
  else
    own_pid >/dev/null
  fi
}

# Any enforcer on this state directory (ours, the site's, one started by hand) holds its flock.
enforcer_holds_state_lock() {
  [ -e "$MIS_STATE_LOCK" ] && ! flock --nonblock --shared "$MIS_STATE_LOCK" true
}

wait_for_socket() {
  local deadline=$((SECONDS + MIS_START_TIMEOUT))
  until [ -S "$MIS_SOCKET" ]; do
    if ! daemon_running; then
      say "the daemon exited before serving $MIS_SOCKET (see ${1})"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "no socket at $MIS_SOCKET after ${MIS_START_TIMEOUT}s (see ${1})"
      return 1
    fi
    sleep 0.2
  done
}

start() {
  touch "$MIS_JOBS_DIR/$job"
  if daemon_running; then
    [ -S "$MIS_SOCKET" ] && return 0
    wait_for_socket "the daemon's log"
    return
  fi
  if enforcer_holds_state_lock; then
    # Not ours and not the unit: someone runs a daemon here already. Use it, never stop it.
    return 0
  fi
  if use_systemd; then
    systemctl start "$MIS_UNIT"
    touch "$started_marker"
    wait_for_socket "journalctl -u $MIS_UNIT"
  else
    mkdir -p "$(dirname "$MIS_LOG")"
    # setsid: out of slurmd's session; no terminal, no inherited descriptors kept open, so slurmd
    # does not wait for it. `mis` (the image's wrapper) execs dotnet, so $! is the daemon.
    setsid "$MIS_BIN" enforcer "$MIS_CONFIG_FILE" </dev/null >>"$MIS_LOG" 2>&1 9>&- &
    echo $! >"$pid_file"
    touch "$started_marker"
    wait_for_socket "$MIS_LOG"
  fi
}

stop() {
  rm -f "$MIS_JOBS_DIR/$job"
  # Other jobs on the node still use it, or the site runs it permanently: leave it.
  if [ -n "$(ls -A "$MIS_JOBS_DIR")" ] || [ ! -e "$started_marker" ]; then
    return 0
  fi
  if use_systemd; then
    systemctl stop "$MIS_UNIT"
  elif pid=$(own_pid); then
    # SIGTERM: the daemon kills its workloads, removes their cgroups and detaches its programs.
    kill -TERM "$pid"
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "the daemon (pid $pid) did not stop within 30 s; killing it"
      kill -KILL "$pid"
    fi
  fi
  rm -f "$pid_file" "$started_marker"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) say "usage: $0 start|stop JOBID"; exit 2 ;;
esac
