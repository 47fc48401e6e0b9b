#!/usr/bin/python3
"""Calls mis.policy.v1.PolicyService over a Unix socket as whoever runs it (the tests start it
under setpriv as an unprivileged user, so the enforcer sees that user's SO_PEERCRED). Debian's
python3-grpcio with stubs generated beforehand by grpc_tools.protoc into STUBS_DIR.

usage: access_client.py STUBS_DIR unix:SOCKET 'JSON list of calls'
A call is {"rpc": "RunWorkload", "request": {...}} (the request as protobuf JSON) with, for
WatchEvents, "timeout" (seconds; the stream is read until then) and "events" (stop after that many).
Prints one JSON list: per call {"code": "OK" or the status name, "detail": ..., "response": {...}}
("events": [...] for WatchEvents).
"""
import json
import sys


def main(stubs_dir, target, calls):
    sys.path.insert(0, stubs_dir)
    import grpc
    from google.protobuf import json_format
    from mis.policy.v1 import policy_pb2 as pb
    from mis.policy.v1 import policy_pb2_grpc as rpc

    stub = rpc.PolicyServiceStub(grpc.insecure_channel(target))
    results = []
    for call in calls:
        name = call["rpc"]
        request = json_format.ParseDict(call.get("request", {}), getattr(pb, name + "Request")())
        result = {"rpc": name, "code": "OK", "detail": ""}
        try:
            if name == "WatchEvents":
                events = result["events"] = []  # kept when the deadline ends the stream
                stream = getattr(stub, name)(request, timeout=call.get("timeout", 5))
                for event in stream:
                    events.append(json_format.MessageToDict(event, preserving_proto_field_name=True))
                    if len(events) >= call.get("events", 1 << 30):
                        stream.cancel()
                        break
            else:
                response = getattr(stub, name)(request, timeout=call.get("timeout", 30))
                result["response"] = json_format.MessageToDict(response, preserving_proto_field_name=True)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and name == "WatchEvents":
                pass  # we ended the stream ourselves after enough events
            else:
                result["code"] = e.code().name
                result["detail"] = e.details() or ""
        results.append(result)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
