"""Compare two GGUF JSON dumps (see gguf_json.py); exit 1 naming the first difference.

usage: python3 compare_json.py EXPECTED.json ACTUAL.json
"""
import json
import sys

from gguf_json import normalize


def diff(a, b, path="$"):
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        if sorted(a) != sorted(b):
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            d = diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, f"{path}[{i}]")
            if d:
                return d
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


if __name__ == "__main__":
    docs = []
    for p in sys.argv[1:3]:
        with open(p, encoding="utf-8") as f:
            docs.append(normalize(json.load(f)))
    d = diff(*docs)
    if d:
        print(f"GGUF dumps differ (expected {sys.argv[1]} vs actual {sys.argv[2]}): {d}")
        sys.exit(1)
    print("GGUF dumps match")
