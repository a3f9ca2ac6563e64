"""Milvus calls through gRPC C-core (Debian's python3-grpcio), on the
channel pymilvus builds, driven by ccore_test.go.

The channel is the one pymilvus's GrpcHandler._setup_grpc_channel makes for
connect(host, port="443", secure=True, server_name=NAME,
server_pem_path=CA) in pymilvus 2.4.x-2.5.x: grpc.secure_channel with
grpc.ssl_channel_credentials(root_certificates=CA) and the options
max_send_message_length and max_receive_message_length -1 (no limit),
grpc.enable_retries 1, grpc.keepalive_time_ms 55000 and
grpc.ssl_target_name_override NAME. Connecting waits for
grpc.channel_ready_future (pymilvus: 10 s) and calls Connect, as pymilvus's
__internal_register does.

Messages are raw bytes: the Go test builds every request with milvus-proto's
go-api and decodes every reply, so no generated Python code is needed. The
plan comes as JSON in the file named by argv[1]; replies are written to
files in plan["out_dir"]; the result is one JSON object on stdout. At each
sync point the script writes "sync NAME" on stdout and waits for a line on
stdin, so that the test can change the cluster (slow a replica) in between.
"""

import json
import sys
import time
import urllib.request

import grpc
from grpc._cython import cygrpc

REPLICA_HEADER = "x-milvus-replica"


def read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def pymilvus_channel(target, server_name, server_pem_path, client_pem_path=None, client_key_path=None):
    """pymilvus's channel; with client_pem_path and client_key_path it is
    connect(..., client_pem_path=, client_key_path=, ca_pem_path=), which
    passes them to grpc.ssl_channel_credentials as certificate_chain and
    private_key (mutual TLS)."""
    opts = [
        (cygrpc.ChannelArgKey.max_send_message_length, -1),
        (cygrpc.ChannelArgKey.max_receive_message_length, -1),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 55000),
    ]
    opts.append(("grpc.ssl_target_name_override", server_name))
    creds = grpc.ssl_channel_credentials(root_certificates=read(server_pem_path),
                                         private_key=read(client_key_path),
                                         certificate_chain=read(client_pem_path))
    return grpc.secure_channel(target, creds, options=opts)


def unary(channel, method):
    # No (de)serializers: requests and replies stay bytes.
    return channel.unary_unary(method)


def replica_of(call):
    for k, v in list(call.initial_metadata() or []) + list(call.trailing_metadata() or []):
        if k == REPLICA_HEADER:
            return v
    return ""


def sync(name):
    print("sync " + name, flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("sync %s: the test did not say go" % name)


def in_flight(admin):
    with urllib.request.urlopen("http://%s/metrics" % admin, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("l7lb_in_flight_requests "):
                return float(line.split()[1])
    return 0.0


def mtls_main(plan):
    """One mutual-TLS probe: open the channel with or without a client
    certificate, wait for it to be ready (bounded), make one call, report."""
    out = {"grpc_version": grpc.__version__}
    channel = pymilvus_channel(plan["target"], plan["server_name"], plan["server_pem_path"],
                               plan.get("client_pem_path"), plan.get("client_key_path"))
    try:
        grpc.channel_ready_future(channel).result(timeout=plan["ready_timeout"])
        out["ready"] = True
    except grpc.FutureTimeoutError:
        out["ready"] = False
    c = plan["call"]
    try:
        _, call = unary(channel, c["method"]).with_call(bytes.fromhex(c["request"]), timeout=5)
        out.update(ok=True, code=call.code().name, replica=replica_of(call))
    except grpc.RpcError as e:
        out.update(ok=False, code=e.code().name, details=e.details())
    channel.close()
    print(json.dumps(out), flush=True)


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    if plan.get("mode") == "mtls":
        mtls_main(plan)
        return
    out = {"grpc_version": grpc.__version__, "calls": []}

    def record(phase, method, code, replica="", size=0, seconds=0.0):
        out["calls"].append({"phase": phase, "method": method.rsplit("/", 1)[-1], "code": code,
                             "replica": replica, "bytes": size, "seconds": round(seconds, 4)})

    def save(name, data):
        with open("%s/%s.bin" % (plan["out_dir"], name), "wb") as f:
            f.write(data)

    channel = pymilvus_channel(plan["target"], plan["server_name"], plan["server_pem_path"])
    grpc.channel_ready_future(channel).result(timeout=10)

    c = plan["connect"]
    reply, call = unary(channel, c["method"]).with_call(bytes.fromhex(c["request"]), timeout=10)
    save("connect", reply)
    record("connect", c["method"], call.code().name, replica_of(call), len(reply))

    # Unary calls, one after another on the one channel (one HTTP/2
    # connection): l7lb balances each call, not the connection.
    for u in plan["unary"]:
        stub = unary(channel, u["method"])
        req = bytes.fromhex(u["request"])
        for i in range(u["count"]):
            reply, call = stub.with_call(req, timeout=10)
            if i == 0:
                save("unary-" + u["method"].rsplit("/", 1)[-1], reply)
            record("unary", u["method"], call.code().name, replica_of(call), len(reply))

    # A large reply (several MiB) through pymilvus's unlimited receive size.
    lg = plan["large"]
    t0 = time.monotonic()
    reply, call = unary(channel, lg["method"]).with_call(bytes.fromhex(lg["request"]), timeout=30)
    save("large", reply)
    record("large", lg["method"], call.code().name, replica_of(call), len(reply), time.monotonic() - t0)

    sync("slow")  # every replica now answers after a delay

    # A deadline shorter than the replicas' delay.
    d = plan["deadline"]
    t0 = time.monotonic()
    try:
        unary(channel, d["method"]).with_call(bytes.fromhex(d["request"]), timeout=d["timeout"])
        record("deadline", d["method"], "OK", seconds=time.monotonic() - t0)
    except grpc.RpcError as e:
        record("deadline", d["method"], e.code().name, seconds=time.monotonic() - t0)

    # A cancel: start a call, wait until l7lb has forwarded it, cancel.
    cn = plan["cancel"]
    fut = unary(channel, cn["method"]).future(bytes.fromhex(cn["request"]), timeout=30)
    deadline = time.monotonic() + 10
    seen = 0.0
    while time.monotonic() < deadline:
        seen = in_flight(plan["admin"])
        if seen >= 1:
            break
        time.sleep(0.02)
    cancelled = fut.cancel()
    code = fut.code().name if fut.done() and fut.code() is not None else "NONE"
    record("cancel", cn["method"], code)
    out["cancel"] = {"in_flight_before": seen, "cancel_returned": cancelled, "cancelled": fut.cancelled()}

    sync("fast")  # the delay is gone

    # The balancer is healthy after the cancel: the same channel's next
    # calls succeed.
    after = plan["after"]
    stub = unary(channel, after["method"])
    for _ in range(after["count"]):
        reply, call = stub.with_call(bytes.fromhex(after["request"]), timeout=10)
        record("after", after["method"], call.code().name, replica_of(call), len(reply))
    save("after", reply)
    channel.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
