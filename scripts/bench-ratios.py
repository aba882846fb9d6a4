#!/usr/bin/env python3
"""Ratios of pocnet-crypto's envelope costs to the bare primitives they use, from the
criterion estimates of the last `cargo bench -p pocnet-crypto` run. Prints Markdown."""
import json, pathlib, sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")

def mean(group, name):
    p = root / group / name / "new" / "estimates.json"
    return json.loads(p.read_text())["mean"]["point_estimate"] / 1000.0  # µs

prim = {n: mean("primitive", n) for n in [
    "ed25519_sign", "ed25519_verify_strict", "x25519_agreement", "hpke_xwing_seal_32B",
    "hpke_xwing_open_32B", "hpke_x25519_seal_32B", "hpke_x25519_open_32B", "chacha20poly1305_1KiB"]}
print("| primitive | µs |\n|---|---|")
for k, v in prim.items():
    print(f"| {k} | {v:.1f} |")
def ran(group):
    # A filtered run (`cargo bench ... -- 'alert|primitive'`) leaves other groups out.
    return (root / group).exists()

if ran("envelope"):
    print("\n| operation | µs | sum of primitives used, µs | ratio (target ≤ 1.3) |\n|---|---|---|---|")
    for suite in ["xwing", "x25519"]:
        for n in [1, 35]:
            s = mean("envelope", f"seal_1KiB_{suite}_{n}")
            ps = prim["ed25519_sign"] + n * prim[f"hpke_{suite}_seal_32B"] + prim["chacha20poly1305_1KiB"]
            print(f"| seal 1 KiB, {suite}, {n} recipient(s) | {s:.1f} | {ps:.1f} | {s/ps:.2f} |")
            o = mean("envelope", f"open_1KiB_{suite}_{n}")
            po = prim["ed25519_verify_strict"] + prim[f"hpke_{suite}_open_32B"] + prim["chacha20poly1305_1KiB"]
            print(f"| open 1 KiB, {suite}, of {n} recipient(s) | {o:.1f} | {po:.1f} | {o/po:.2f} |")
if ran("stream_64MiB"):
    raw = mean("stream_64MiB", "raw_chacha20poly1305_64KiB_chunks")
    mib = 64.0
    print("\n| 64 MiB stream | MiB/s | raw ChaCha20-Poly1305 MiB/s | ratio (target ≥ 0.70) |\n|---|---|---|---|")
    for name in ["seal_stream", "open_stream"]:
        t = mean("stream_64MiB", name)
        print(f"| {name} | {mib/(t/1e6):.0f} | {mib/(raw/1e6):.0f} | {raw/t:.2f} |")

alert_path = root / "alert"
if alert_path.exists():
    c4 = mean("primitive", "chacha20poly1305_4KiB")
    print("\n| alert sealed once for every POC | ms (both cores) | one-core sum of primitives, ms | ratio (target ≤ 0.6) |\n|---|---|---|---|")
    for n in [105, 1000]:
        t = mean("alert", f"seal_4KiB_xwing_{n}")
        ps = prim["ed25519_sign"] + n * prim["hpke_xwing_seal_32B"] + c4
        print(f"| X-Wing, 4 KiB, {n} POCs | {t/1000:.1f} | {ps/1000:.1f} | {t/ps:.2f} |")
