"""Writes DIR/lateen.yaml and DIR/envoy.yaml: bench/lateen.yaml and bench/envoy.yaml with a
file access log in Istio's default text format (DIR/lateen-access.log, DIR/envoy-access.log)
on their listener, for bench/run.sh's rows with access logging on."""
import json
import sys
from pathlib import Path

from bench_configs import insert_after

# Istio's EnvoyTextLogFormat (pilot/pkg/model/telemetry_logging.go).
ISTIO_TEXT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    fmt = json.dumps(ISTIO_TEXT)
    lateen = Path("bench/lateen.yaml").read_text()
    lateen = insert_after(
        lateen,
        "    route_config: bench\n",
        f"    access_log: [{{ path: {json.dumps(str(out / 'lateen-access.log'))}, text: {fmt} }}]\n",
    )
    (out / "lateen.yaml").write_text(lateen)
    envoy = Path("bench/envoy.yaml").read_text()
    pad = " " * 16
    envoy = insert_after(
        envoy,
        f"{pad}stat_prefix: bench\n",
        f"{pad}access_log:\n"
        f"{pad}  - name: envoy.access_loggers.file\n"
        f"{pad}    typed_config:\n"
        f'{pad}      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n'
        f"{pad}      path: {json.dumps(str(out / 'envoy-access.log'))}\n"
        f"{pad}      log_format: {{ text_format_source: {{ inline_string: {fmt} }} }}\n",
    )
    (out / "envoy.yaml").write_text(envoy)


main()
