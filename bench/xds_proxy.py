#!/usr/bin/env python3
"""Helpers of bench/xds-proxy.sh (the xDS-configured proxy benchmark, issue 4).

  mesh DIR --services N --routed R --backend-ports P,P,...
      writes lateend's config folder: a `backend` service whose endpoints are the nginx
      ports (WorkloadEntries on 127.0.0.1), N services svc-K.bench.svc.cluster.local (one
      STATIC endpoint each on 127.77.0.0/16, never contacted), a VirtualService with 10
      prefix routes to `backend` for each of the first R, and one Sidecar per proxy under
      test (interception NONE: an explicit listener on BIND:9080).
  bootstrap --node-id ID --app APP --ip IP --xds-port P --admin-port A
      prints an Envoy bootstrap with Istio-like node metadata (as istio-agent writes it).
  ready --admin-port A --log FILE --runs N -- COMMAND...
      starts COMMAND N times; each time measures exec → admin /ready answering 200 LIVE,
      then stops it; prints one JSON object (all runs in ms, median, max).
  logsplit FILE
      for lateen-proxy's info log: ms from "starting as an xDS" (ADS client starts) to the
      first accepted update, and from there to ready.

Only loopback addresses are used. Every wait is bounded.
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

NAMESPACE = "bench"
PORT = 9080
ROUTES_PER_HOST = 10
# The proxies under test: workload label → egress listener address (interception NONE).
PROXIES = {"bench-lateen": "127.0.56.1", "bench-envoy": "127.0.56.2"}


def write(path: Path, text: str) -> None:
    # Hidden temp file then rename: lateend watches the folder and must never read half a file.
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def service_entry(name: str, endpoints: str) -> str:
    """A MESH_INTERNAL STATIC ServiceEntry NAME.bench.svc.cluster.local with one HTTP port;
    `endpoints` is its workloadSelector or endpoints line."""
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  hosts: [{name}.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: http, protocol: HTTP}}]
  {endpoints}
"""


def mesh(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    ports = [int(p) for p in args.backend_ports.split(",") if p]
    backend = [service_entry("backend", "workloadSelector: {labels: {app: backend}}")]
    for index, port in enumerate(ports):
        backend.append(
            f"""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: backend-{index}, namespace: {NAMESPACE}}}
spec:
  address: 127.0.0.1
  ports: {{http: {port}}}
  labels: {{app: backend, version: v1}}
"""
        )
    write(out / "backend.yaml", "---\n".join(backend))
    services = []
    for k in range(args.services):
        services.append(service_entry(f"svc-{k}", f"endpoints: [{{address: 127.77.{k // 250}.{k % 250 + 1}}}]"))
    write(out / "services.yaml", "---\n".join(services))
    virtual_services = []
    for k in range(min(args.routed, args.services)):
        routes = "".join(
            f"""  - name: r{r}
    match: [{{uri: {{prefix: /r{r}/}}}}]
    route: [{{destination: {{host: backend.{NAMESPACE}.svc.cluster.local, port: {{number: {PORT}}}}}}}]
"""
            for r in range(ROUTES_PER_HOST)
        )
        virtual_services.append(
            f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{k}, namespace: {NAMESPACE}}}
spec:
  hosts: [svc-{k}.{NAMESPACE}.svc.cluster.local]
  http:
{routes}"""
        )
    write(out / "virtual-services.yaml", "---\n".join(virtual_services) or "\n")
    sidecars = [
        f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app}, namespace: {NAMESPACE}}}
spec:
  workloadSelector: {{labels: {{app: {app}}}}}
  egress:
  - port: {{number: {PORT}, name: http, protocol: HTTP}}
    bind: {bind}
    hosts: ["./*"]
"""
        for app, bind in PROXIES.items()
    ]
    write(out / "sidecars.yaml", "---\n".join(sidecars))


def bootstrap(args: argparse.Namespace) -> None:
    # The node as istio-agent fills it for a sidecar in interception mode NONE.
    print(
        f"""node:
  id: "{args.node_id}"
  cluster: {args.app}.{NAMESPACE}
  metadata:
    NAMESPACE: {NAMESPACE}
    LABELS: {{app: {args.app}}}
    INTERCEPTION_MODE: NONE
    SERVICE_ACCOUNT: default
    INSTANCE_IPS: {args.ip}
    WORKLOAD_NAME: {args.app}
    CLUSTER_ID: Kubernetes
    MESH_ID: cluster.local
    ISTIO_VERSION: 1.28.0
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {args.admin_port}}}}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - envoy_grpc: {{cluster_name: xds-grpc}}
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {args.xds_port}}}}}}}
"""
    )


def is_live(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        conn.request("GET", "/ready")
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status == 200 and body.strip() == b"LIVE"
    except (OSError, http.client.HTTPException):
        return False


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def ready(args: argparse.Namespace) -> None:
    times = []
    splits = []
    for run in range(args.runs):
        log = open(args.log, "w")
        started = time.monotonic()
        process = subprocess.Popen(args.command, stdout=subprocess.DEVNULL, stderr=log)
        deadline = started + args.timeout
        elapsed = None
        # Poll every millisecond: the figure's resolution is about 1 ms plus one request.
        while time.monotonic() < deadline:
            if is_live(args.admin_port):
                elapsed = (time.monotonic() - started) * 1000
                break
            if process.poll() is not None:
                break
            time.sleep(0.001)
        stop(process)
        log.close()
        if elapsed is None:
            print(f"run {run}: not ready within {args.timeout} s; log {args.log}:\n" + Path(args.log).read_text()[-3000:], file=sys.stderr)
            sys.exit(1)
        times.append(round(elapsed, 1))
        split = log_split(args.log)
        if split:
            splits.append(split)
        # Let lateend see the disconnect and settle before the next start.
        time.sleep(args.pause)
    result = {"runs_ms": times, "median_ms": round(statistics.median(times), 1), "max_ms": max(times)}
    if splits:
        result["to_first_update_ms"] = [s["to_first_update_ms"] for s in splits]
        result["first_update_to_ready_ms"] = [s["first_update_to_ready_ms"] for s in splits]
        result["median_first_update_to_ready_ms"] = round(statistics.median(result["first_update_to_ready_ms"]), 1)
        result["median_to_first_update_ms"] = round(statistics.median(result["to_first_update_ms"]), 1)
    print(json.dumps(result))


STAMP = re.compile(r"^(?:\x1b\[[0-9;]*m)?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def log_split(path: str):
    """lateen-proxy's own account, from its info log's timestamps: ADS client start → first
    accepted update (connect + lateend computing and sending the first answer + our
    translation of it), and first accepted update → ready."""
    start = first = ready_at = None
    for line in Path(path).read_text(errors="replace").splitlines():
        match = STAMP.match(line)
        if not match:
            continue
        # Microseconds are enough; trim nanoseconds so fromisoformat accepts the stamp.
        stamp = match.group(1)
        whole, _, fraction = stamp.partition(".")
        at = datetime.fromisoformat(f"{whole}.{fraction[:6]:0<6}")
        if start is None and "starting as an xDS" in line:
            start = at
        elif first is None and "accepted" in line and "update" in line:
            first = at
        elif ready_at is None and "ready" in line and "first configuration applied" in line:
            ready_at = at
    if not (start and first and ready_at):
        return None
    return {
        "to_first_update_ms": round((first - start).total_seconds() * 1000, 1),
        "first_update_to_ready_ms": round((ready_at - first).total_seconds() * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command_name", required=True)
    p = sub.add_parser("mesh")
    p.add_argument("dir")
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--routed", type=int, default=100)
    p.add_argument("--backend-ports", required=True)
    p = sub.add_parser("bootstrap")
    p.add_argument("--node-id", required=True)
    p.add_argument("--app", required=True)
    p.add_argument("--ip", required=True)
    p.add_argument("--xds-port", type=int, required=True)
    p.add_argument("--admin-port", type=int, required=True)
    p = sub.add_parser("ready")
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--pause", type=float, default=0.5)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("logsplit")
    p.add_argument("log")
    args = parser.parse_args()
    if args.command_name == "mesh":
        mesh(args)
    elif args.command_name == "bootstrap":
        bootstrap(args)
    elif args.command_name == "ready":
        if args.command and args.command[0] == "--":
            args.command = args.command[1:]
        if not args.command:
            parser.error("ready needs a command after --")
        ready(args)
    else:
        print(json.dumps(log_split(args.log)))


if __name__ == "__main__":
    main()
