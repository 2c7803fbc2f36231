"""Writes DIR/lateen.yaml and DIR/envoy.yaml: bench/lateen.yaml and bench/envoy.yaml with
OpenTelemetry tracing at PERCENT % on their listener, spans going over OTLP/gRPC to a cluster
`otel` at 127.0.0.1:14317 (lateen-otlp-receiver), for bench/run.sh's tracing rows.
Envoy's part is what lateend sends it (envoy.tracers.opentelemetry over envoy_grpc).
Usage: python3 bench/tracing-configs.py DIR PERCENT"""
import sys
from pathlib import Path

from bench_configs import insert_after

RECEIVER_PORT = 14317


def main() -> None:
    out = Path(sys.argv[1])
    percent = float(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    lateen = Path("bench/lateen.yaml").read_text()
    lateen = insert_after(
        lateen,
        "    route_config: bench\n",
        "    tracing: { cluster: otel, service_name: bench-client.default, "
        f"random_sampling: {percent} }}\n",
    )
    lateen += (
        "  - name: otel\n"
        "    protocol: http2\n"
        f"    endpoints: [{{ address: 127.0.0.1:{RECEIVER_PORT} }}]\n"
    )
    (out / "lateen.yaml").write_text(lateen)
    envoy = Path("bench/envoy.yaml").read_text()
    pad = " " * 16
    envoy = insert_after(
        envoy,
        f"{pad}stat_prefix: bench\n",
        f"{pad}tracing:\n"
        f"{pad}  random_sampling: {{ value: {percent} }}\n"
        f"{pad}  provider:\n"
        f"{pad}    name: envoy.tracers.opentelemetry\n"
        f"{pad}    typed_config:\n"
        f'{pad}      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n'
        f"{pad}      grpc_service: {{ envoy_grpc: {{ cluster_name: otel }} }}\n"
        f"{pad}      service_name: bench-client.default\n",
    )
    envoy += (
        "    - name: otel\n"
        "      type: STATIC\n"
        "      connect_timeout: 1s\n"
        "      typed_extension_protocol_options:\n"
        "        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
        '          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n'
        "          explicit_http_config: { http2_protocol_options: {} }\n"
        "      load_assignment:\n"
        "        cluster_name: otel\n"
        "        endpoints:\n"
        "          - lb_endpoints:\n"
        f"              - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {RECEIVER_PORT} }} }} }}\n"
    )
    (out / "envoy.yaml").write_text(envoy)


main()
