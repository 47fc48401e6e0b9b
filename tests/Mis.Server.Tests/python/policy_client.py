#!/usr/bin/python3
"""An independent client of mis.policy.v1.PolicyService: Debian's python3-grpcio, with stubs
generated from proto/ at run time by grpc_tools.protoc. It knows nothing of the C# code.

usage: policy_client.py PROTO_DIR HOST:PORT
Prints one line per check and ends with 'N passed, 0 failed'; exits non-zero on the first failure.
"""
import subprocess
import sys
import tempfile
import time


def main(proto_dir, target):
    with tempfile.TemporaryDirectory(prefix="mis-py-stubs-") as out:
        run_checks(proto_dir, target, out)


def run_checks(proto_dir, target, out):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir,
                    "--python_out", out, "--grpc_python_out", out, "mis/policy/v1/policy.proto"], check=True)
    sys.path.insert(0, out)
    import grpc
    from mis.policy.v1 import policy_pb2 as pb
    from mis.policy.v1 import policy_pb2_grpc as rpc

    stub = rpc.PolicyServiceStub(grpc.insecure_channel(target))
    passed = [0]

    def check(name, condition, detail=""):
        if not condition:
            print("FAILED: %s %s" % (name, detail))
            print("%d passed, 1 failed" % passed[0])
            sys.exit(1)
        passed[0] += 1
        print("ok: " + name)

    def code_of(call):
        try:
            call()
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, ""

    def wait_exited(cgroup_id):
        deadline = time.time() + 20
        while time.time() < deadline:
            info = stub.GetCgroup(pb.GetCgroupRequest(cgroup_id=cgroup_id))
            if info.state == pb.WORKLOAD_STATE_EXITED:
                return info
            time.sleep(0.02)
        raise AssertionError("cgroup %d never exited" % cgroup_id)

    def wait_comm(pid, comm):
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == comm:
                        return
            except OSError:
                pass
            time.sleep(0.01)
        raise AssertionError("pid %d never became %s" % (pid, comm))

    stats = stub.GetStats(pb.GetStatsRequest())
    check("GetStats answers, no decision cache", stats.cache_hits == 0 and stats.cache_misses == 0)

    code, detail = code_of(lambda: stub.AddRule(pb.AddRuleRequest(inode=1, dev_id=1, action=7)))
    check("AddRule with an unknown action is INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT and "action 7" in detail, detail)
    code, detail = code_of(lambda: stub.KillProcess(pb.KillProcessRequest(cgroup_id=1)))
    check("KillProcess on an unmanaged cgroup is NOT_FOUND", code == grpc.StatusCode.NOT_FOUND, detail)
    code, detail = code_of(lambda: stub.RunWorkload(pb.RunWorkloadRequest(command="")))
    check("RunWorkload with an empty command is INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT, detail)

    started = stub.RunWorkload(pb.RunWorkloadRequest(command="sh", args=["-c", "cat /etc/shadow; exit 5"]))
    check("RunWorkload returns a cgroup and a pid", started.cgroup_id > 0 and started.pid > 0)
    info = wait_exited(started.cgroup_id)
    check("the workload's exit status and violation are reported", info.exit_status == 5 and info.violations == 1,
          "exit %d violations %d" % (info.exit_status, info.violations))

    sleeper = stub.RunWorkload(pb.RunWorkloadRequest(command="sleep", args=["30"]))
    wait_comm(sleeper.pid, "sleep")  # exec'd before DEFCON 2 would deny the exec
    events = stub.WatchEvents(pb.WatchEventsRequest(cgroup_id=sleeper.cgroup_id))
    events.initial_metadata()  # the server subscribes before it sends headers
    raised = stub.SetDefcon(pb.SetDefconRequest(cgroup_id=sleeper.cgroup_id, level=2))
    check("SetDefcon raises the level", raised.previous_defcon == 5 and raised.defcon == 2)
    first = next(events)
    check("WatchEvents delivers the transition", first.event == "defcon_transition" and first.defcon == 2 and first.prev_defcon == 5,
          str(first))
    listed = stub.ListCgroups(pb.ListCgroupsRequest())
    check("ListCgroups shows the running workload", any(c.cgroup_id == sleeper.cgroup_id and c.defcon == 2 for c in listed.cgroups))
    killed = stub.KillProcess(pb.KillProcessRequest(cgroup_id=sleeper.cgroup_id))
    check("KillProcess answers once the cgroup is empty", killed.success and not killed.already_exited)
    kinds = set()
    for e in events:
        kinds.add(e.event)
        if e.event == "exit":
            check("the exit event reports the kill", e.exit_status == 137 and e.decision == "kill", str(e))
            break
    events.cancel()
    check("the stream carried kill and exit events", {"kill", "exit"} <= kinds, str(kinds))

    print("%d passed, 0 failed" % passed[0])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
