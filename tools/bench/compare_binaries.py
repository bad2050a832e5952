#!/usr/bin/env python3
"""Before/after on one machine: runs the same `petrel bench` workloads against a broker started from
binary A and from binary B, alternating A B A B ... (so drift on a noisy machine hits both), and
prints each figure's median per binary and the median of the per-pair ratios B/A.

    tools/bench/compare_binaries.py --a OLD/petrel --b NEW/petrel [--reps 3] [--scenarios a,b]
                                    [--set key=value]...

Scenarios (the load generator is always B's `petrel bench`, so only the broker differs):
  produce-100b   2,000,000 × 100 B, acks=1, 1 partition
  produce-1k     1,000,000 × 1 KiB, acks=1, 1 partition
  produce-1k-lz4 1,000,000 × 1 KiB, lz4, acks=1 (decompress + validate path)
  e2e-20k        end-to-end latency at 20,000 msg/s for 8 s, 1 partition (p50/p99)
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

SCENARIOS = {
    "produce-100b": ["produce", "--record-size", "100", "--count", "2000000"],
    "produce-1k": ["produce", "--record-size", "1024", "--count", "1000000"],
    "produce-1k-lz4": ["produce", "--record-size", "1024", "--count", "1000000", "--compression", "lz4"],
    "e2e-20k": ["e2e", "--rate", "20000", "--duration", "8s", "--linger-ms", "0"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary: str, data: str, sets: list[str]):
    port = free_port()
    cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data]
    for kv in sets:
        cmd += ["--set", kv]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if "listening on" in line:
            return proc, f"127.0.0.1:{port}"
    proc.kill()
    raise SystemExit(f"{binary} did not start")


def run_once(broker_bin: str, bench_bin: str, scenario: str, sets: list[str]) -> dict:
    data = tempfile.mkdtemp(prefix="petrel-cmp-")
    proc, addr = start(broker_bin, data, sets)
    try:
        out = subprocess.run([bench_bin, "bench", *SCENARIOS[scenario], "--bootstrap", addr, "--topic", "cmp", "--json"],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"bench failed: {out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def figures(result: dict, scenario: str) -> dict:
    flat = {}
    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix[:-1]] = value
    walk("", result)
    wanted = ("recordsPerSecond", "mibPerSecond", "p50", "p99", "p999")
    return {k: v for k, v in flat.items() if k.split(".")[-1] in wanted or k.split(".")[-1].lower().startswith(("p50", "p99"))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="broker binary A (before)")
    ap.add_argument("--b", required=True, help="broker binary B (after); also the load generator")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scenarios", default="produce-100b,produce-1k,e2e-20k")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    print("| scenario | figure | A (median) | B (median) | B/A (median of pairs) |")
    print("| --- | --- | --- | --- | --- |")
    for scenario in args.scenarios.split(","):
        runs = {"a": [], "b": []}
        for _ in range(args.reps):
            runs["a"].append(figures(run_once(args.a, args.b, scenario, args.set), scenario))
            runs["b"].append(figures(run_once(args.b, args.b, scenario, args.set), scenario))
        for key in sorted(runs["a"][0]):
            a = [r[key] for r in runs["a"] if key in r]
            b = [r[key] for r in runs["b"] if key in r]
            if not a or not b:
                continue
            ratios = [y / x for x, y in zip(a, b) if x]
            print(f"| {scenario} | {key} | {statistics.median(a):.4g} | {statistics.median(b):.4g} | "
                  f"{statistics.median(ratios):.3f} |" if ratios else "")


if __name__ == "__main__":
    main()
