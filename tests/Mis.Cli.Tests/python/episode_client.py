"""Calls the node daemon's mis.episodes.v1.KernelEpisodeService as whoever runs it (the test runs it
under runuser, so the daemon reads that account's SO_PEERCRED).

    episode_client.py PROTO_DIR SOCKET hold SCENARIO_FILE   # Open and Begin a backend, print its id and our pid, wait to be killed
    episode_client.py PROTO_DIR SOCKET touch BACKEND_ID     # Begin, Perform and Close on someone's backend:
                                                            # one JSON line per call, {"call", "code", "detail"}
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import grpc

proto_dir, socket, mode, argument = sys.argv[1:5]
out = tempfile.mkdtemp(prefix="mis-episodes-stubs-")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir, "--python_out", out, "--grpc_python_out", out,
                os.path.join(proto_dir, "mis/episodes/v1/episodes.proto")], check=True)
sys.path.insert(0, out)
from mis.episodes.v1 import episodes_pb2 as pb, episodes_pb2_grpc as rpc  # noqa: E402

stub = rpc.KernelEpisodeServiceStub(grpc.insecure_channel("unix:" + socket))
if mode == "hold":
    with open(argument) as f:
        opened = stub.Open(pb.OpenRequest(scenario_file=os.path.abspath(argument), scenario_text=f.read(),
                                          slowdown_us=[100, 500, 2000], kill_at_level1=True))
    stub.Begin(pb.BackendRef(backend_id=opened.backend_id))
    print(json.dumps({"backend_id": opened.backend_id, "user": opened.user, "pid": os.getpid()}), flush=True)
    while True:
        time.sleep(60)

for name, call in (("Begin", stub.Begin), ("Perform", lambda r: stub.Perform(pb.PerformRequest(backend_id=r.backend_id, action=0))),
                   ("Close", stub.Close)):
    try:
        call(pb.BackendRef(backend_id=argument))
        print(json.dumps({"call": name, "code": "OK", "detail": ""}))
    except grpc.RpcError as e:
        print(json.dumps({"call": name, "code": e.code().name, "detail": e.details()}))
