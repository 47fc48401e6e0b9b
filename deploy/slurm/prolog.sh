#!/bin/bash
# Slurm Prolog: makes sure the MIS node daemon runs while this job is on the node.
# Install on every compute node, next to mis-node-daemon.sh, and name it in slurm.conf:
#
#   Prolog=/etc/slurm/prolog.sh
#   PrologFlags=Alloc        # run it when the job is allocated, before its first step
#
# slurmd runs it as root with SLURM_JOB_ID set. A non-zero exit drains the node and requeues the
# job: a daemon that does not come up is a node problem, and the job would fail on it anyway.
exec "$(dirname "$(readlink -f "$0")")/mis-node-daemon.sh" start "${SLURM_JOB_ID:?slurmd sets SLURM_JOB_ID}"
