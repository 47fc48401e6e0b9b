#!/bin/bash
# Slurm Epilog: takes this job off the MIS node daemon's list; the last job to leave stops a daemon
# that a prolog started (a permanently running systemd unit is left alone).
# Install on every compute node, next to mis-node-daemon.sh, and name it in slurm.conf:
#
#   Epilog=/etc/slurm/epilog.sh
#
# slurmd runs it as root with SLURM_JOB_ID set when the job ends, whatever its exit status.
exec "$(dirname "$(readlink -f "$0")")/mis-node-daemon.sh" stop "${SLURM_JOB_ID:?slurmd sets SLURM_JOB_ID}"
