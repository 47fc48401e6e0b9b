#!/usr/bin/python3
"""Stands in for `mis enforcer CONFIG` in SlurmScriptTests: what deploy/slurm/mis-node-daemon.sh
relies on, and nothing else. Like the real enforcer it holds an exclusive flock on its state lock
($MIS_STATE_LOCK) while it runs, serves a Unix socket ($MIS_SOCKET), and on SIGTERM removes the
socket and exits 0. It also appends its pid to $FAKE_ENFORCER_STARTS, so a test counts starts."""
import fcntl
import os
import signal
import socket
import sys

if len(sys.argv) != 3 or sys.argv[1] != "enforcer":
    sys.exit(f"fake_enforcer: expected `enforcer CONFIG`, got {sys.argv[1:]}")
lock = open(os.environ["MIS_STATE_LOCK"], "a")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit("fake_enforcer: another enforcer holds the state lock")
with open(os.environ["FAKE_ENFORCER_STARTS"], "a") as starts:
    starts.write(f"{os.getpid()}\n")
path = os.environ["MIS_SOCKET"]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen()


def stop(*_):
    os.unlink(path)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
while True:
    signal.pause()
