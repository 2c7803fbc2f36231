"""What bench/access-log-configs.py and bench/tracing-configs.py share: adding a block to
bench/lateen.yaml or bench/envoy.yaml after a marker line."""
import sys


def insert_after(text: str, marker: str, block: str) -> str:
    if marker not in text:
        sys.exit(f"marker {marker!r} not found")
    return text.replace(marker, marker + block, 1)
