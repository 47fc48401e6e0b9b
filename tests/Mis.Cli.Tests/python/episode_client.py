"""Calls the node daemon's mis.episodes.v1.KernelEpisodeService as whoever runs it (the test runs it
under runuser, so the daemon reads that account's SO_PEERCRED) and prints one JSON line per call:
{"call": ..., "code": "OK" | "PERMISSION_DENIED" | ..., "detail": ...}.

    episode_client.py PROTO_DIR SOCKET BACKEND_ID   # Begin and Close on someone's backend
"""
import json
import os
import subprocess
import sys
import tempfile

import grpc

proto_dir, socket, backend_id = sys.argv[1:4]
out = tempfile.mkdtemp(prefix="mis-episodes-stubs-")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir, "--python_out", out, "--grpc_python_out", out,
                os.path.join(proto_dir, "mis/episodes/v1/episodes.proto")], check=True)
sys.path.insert(0, out)
from mis.episodes.v1 import episodes_pb2 as pb, episodes_pb2_grpc as rpc  # noqa: E402

stub = rpc.KernelEpisodeServiceStub(grpc.insecure_channel("unix:" + socket))
for name, call in (("Begin", stub.Begin), ("Perform", lambda r: stub.Perform(pb.PerformRequest(backend_id=r.backend_id, action=0))),
                   ("Close", stub.Close)):
    try:
        call(pb.BackendRef(backend_id=backend_id))
        print(json.dumps({"call": name, "code": "OK", "detail": ""}))
    except grpc.RpcError as e:
        print(json.dumps({"call": name, "code": e.code().name, "detail": e.details()}))
