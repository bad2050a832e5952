#!/usr/bin/env python3
"""Turns bench-e2e.sh's raw JSON lines into a Markdown table and PASS/FAIL target lines.

  report.py --raw runs.jsonl --limits limits.jsonl --meta meta.json --md results.md [--failures N]
  report.py --peak BROKER --raw runs.jsonl     # prints the median produce-1k-p1 records/s (integer)

Each figure: median (min–max) over repetitions. Ratios pair repetition r of Petrel with repetition r
of Tansu (or of the machine limit) and show the median (min–max) of those per-repetition ratios.
"""
import argparse
import json
import statistics
import sys

SCENARIOS = [
    # name, title, limit for produce MiB/s
    ("produce-1k-p1", "produce 1 KiB, acks=1, 1 partition", "buffered-write-1m"),
    ("produce-1k-p16", "produce 1 KiB, acks=1, 16 partitions", "buffered-write-1m"),
    ("produce-100b-p1", "produce 100 B, acks=1, 1 partition, 2 connections", "buffered-write-1m"),
    ("produce-1k-acks-all-durable", "produce 1 KiB, acks=all; Petrel flush.messages=1 (fsync), Tansu memory", "fdatasync-write-1m"),
    ("produce-1k-p1000", "produce 1 KiB, acks=1, 1000 partitions, random keys, 16 KiB batches", "buffered-write-1m"),
    ("e2e-20k-p1", "end-to-end at 20k records/s, 1 KiB, 1 partition", None),
    ("e2e-20k-p16", "end-to-end at 20k records/s, 1 KiB, 16 partitions", None),
    ("e2e-half-peak-p1", "end-to-end at 50% of each broker's own peak, 1 KiB, 1 partition", None),
]
LIMIT_TITLES = {
    "loopback-tcp": "loopback TCP, 1 stream (iperf3)",
    "buffered-write-1m": "buffered sequential write, 1 MiB blocks, fsync at end (fio)",
    "buffered-write-16k": "buffered sequential write, 16 KiB blocks, fsync at end (fio)",
    "direct-write-1m": "O_DIRECT sequential write, 1 MiB blocks (fio)",
    "direct-write-16k": "O_DIRECT sequential write, 16 KiB blocks (fio)",
    "fdatasync-write-16k": "write 16 KiB + fdatasync each (fio)",
    "fdatasync-write-1m": "write 1 MiB + fdatasync each (fio)",
}
TARGET_PRODUCE = 2.0
TARGET_CONSUME = 3.0
TARGET_E2E_P99_MS = 5.0
TARGET_TLS_PRODUCE = 0.70  # SASL_SSL produce ÷ PLAINTEXT produce, same broker, same repetition
SECURE = "petrel-sasl-ssl"  # broker label of the SASL_SSL runs of the tls-* scenarios


def load_lines(path):
    out = []
    if not path:
        return out
    try:
        with open(path) as f:
            for text in f:
                text = text.strip()
                if text:
                    out.append(json.loads(text))
    except FileNotFoundError:
        pass
    return out


def rep_of(line):
    try:
        return int(line.get("rep", 0))
    except (TypeError, ValueError):
        return 0


def values(runs, scenario, broker, mode, metric):
    """{rep: value} for successful runs."""
    out = {}
    for line in runs:
        if line.get("scenario") == scenario and line.get("broker") == broker and line.get("benchMode") == mode and line.get("ok"):
            v = metric(line)
            if v is not None:
                out[rep_of(line)] = v
    return out


def failures(runs, scenario, broker, mode=None):
    return [l for l in runs if l.get("scenario") == scenario and l.get("broker") == broker and not l.get("ok")
            and (mode is None or l.get("benchMode") == mode)]


def fmt(v, digits=3):
    if v is None:
        return "—"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


def spread(by_rep, suffix=""):
    vs = list(by_rep.values())
    if not vs:
        return "—"
    med = statistics.median(vs)
    if len(vs) == 1:
        return f"{fmt(med)}{suffix}"
    return f"{fmt(med)}{suffix} ({fmt(min(vs))}–{fmt(max(vs))})"


def ratios(num, den):
    """Per-repetition ratios where both sides have the repetition; else the ratio of medians."""
    pairs = {r: num[r] / den[r] for r in num if r in den and den[r]}
    if pairs:
        return pairs
    if num and den and statistics.median(den.values()):
        return {0: statistics.median(num.values()) / statistics.median(den.values())}
    return {}


def median(by_rep):
    return statistics.median(by_rep.values()) if by_rep else None


def lat(key):
    def get(line):
        l = line.get("latencyNanos") or {}
        return l[key] / 1e6 if l.get("count") else None
    return get


def client_cpu(line):
    records = line.get("records") or 0
    cpu = line.get("clientCpuSeconds")
    return cpu * 1e6 / records if records and cpu is not None else None


def field(key):
    return lambda line: line.get(key)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--limits")
    ap.add_argument("--meta")
    ap.add_argument("--md")
    ap.add_argument("--failures", type=int, default=0)
    ap.add_argument("--load-end", default="")
    ap.add_argument("--peak")
    args = ap.parse_args()
    runs = load_lines(args.raw)

    if args.peak:
        v = values(runs, "produce-1k-p1", args.peak, "produce", field("recordsPerSecond"))
        print(int(median(v)) if v else 0)
        return 0

    limit_lines = load_lines(args.limits)
    limits = {}
    for line in limit_lines:
        if line.get("ok"):
            limits.setdefault(line["limit"], {})[rep_of(line)] = line["mibPerSecond"]
    meta = {}
    if args.meta:
        try:
            meta = json.load(open(args.meta))
        except (OSError, ValueError):
            pass

    md = []
    md.append("# Petrel end-to-end benchmarks")
    md.append("")
    quick = " — **quick run: small counts, figures are rough**" if meta.get("quick") else ""
    md.append(f"{meta.get('started', '?')}, {meta.get('reps', '?')} repetition(s){quick}. "
              f"{meta.get('cores', '?')} cores ({meta.get('cpu', '?')}), {meta.get('memGiB', '?')} GiB, Linux {meta.get('kernel', '?')}; "
              f"load average at start {meta.get('loadStart', '?')}, at end {args.load_end or '?'}. "
              f"Petrel {meta.get('petrelCommit', '?')}; peer {meta.get('tansu') or 'Tansu'} with `--storage-engine memory://tansu/`. "
              f"Client: `petrel bench` for both brokers.")
    md.append("")
    try:
        load = float(str(meta.get("loadStart", "0")).split()[0])
        if meta.get("cores") and load > 0.5 * meta["cores"]:
            md.append(f"> The machine was busy (load average {load:.1f} on {meta['cores']} cores): absolute figures are noisy; "
                      "ratios within one run, and broker CPU per record, are steadier.")
            md.append("")
    except ValueError:
        pass
    md.append("Figures are median (min–max) over repetitions. *Petrel/Tansu* and *÷ limit* pair the runs of one "
              "repetition and show the median (min–max) of those ratios. Throughput counts value bytes (MiB/s). "
              "Produce MiB/s is divided by the buffered 1 MiB fio write rate (the fsynced 1 MiB rate for the durable run), "
              "consume MiB/s by loopback TCP. Broker CPU is the broker process's utime+stime over the run ÷ records. "
              f"End-to-end runs use linger {meta.get('e2eLingerMs', '?')} ms, {meta.get('e2eSeconds', '?')} s, "
              "latency from intended send times (corrected for coordinated omission).")
    md.append("")

    # ---- machine limits
    md.append("## Machine limits")
    md.append("")
    md.append("| limit | MiB/s | other |")
    md.append("|---|---|---|")
    for name, title in LIMIT_TITLES.items():
        mib = limits.get(name, {})
        other = ""
        ok_lines = [l for l in limit_lines if l.get("limit") == name and l.get("ok")]
        if name == "loopback-tcp":
            other = spread({rep_of(l): l["gbitPerSecond"] for l in ok_lines}, " Gbit/s")
        elif name.startswith("fdatasync"):
            other = spread({rep_of(l): l.get("syncsPerSecond") for l in ok_lines if l.get("syncsPerSecond")}, " syncs/s")
            p50 = {rep_of(l): l["syncP50Micros"] for l in ok_lines if l.get("syncP50Micros")}
            if p50:
                other += ", sync p50 " + spread(p50, " µs")
        bad = [l for l in limit_lines if l.get("limit") == name and not l.get("ok")]
        if bad and not mib:
            other = "FAILED: " + bad[0].get("error", "?")
        if not mib and not bad:
            continue
        md.append(f"| {title} | {spread(mib)} | {other} |")
    if not limits:
        md.append("| (not measured) | | |")
    md.append("")

    # ---- matrix
    md.append("## Petrel and Tansu")
    md.append("")
    md.append("| scenario | figure | Petrel | Tansu | Petrel/Tansu | Petrel ÷ limit | Tansu ÷ limit | plots |")
    md.append("|---|---|---|---|---|---|---|---|")
    targets = []
    warnings = []
    present = {l.get("scenario") for l in runs}

    def row(title, figure, mode, scenario, metric, limit=None, note="", show_plots=False):
        p = values(runs, scenario, "petrel", mode, metric)
        t = values(runs, scenario, "tansu", mode, metric)
        cells = [spread(p), spread(t), spread(ratios(p, t), "×") if p and t else "—"]
        for side in (p, t):
            if limit and limits.get(limit) and side:
                cells.append(spread(ratios(side, limits[limit])))
            else:
                cells.append("—")
        for broker, side in (("petrel", p), ("tansu", t)):
            if not side and failures(runs, scenario, broker, mode):
                idx = 0 if broker == "petrel" else 1
                cells[idx] = "FAILED"
        md.append(f"| {title} | {figure}{note} | " + " | ".join(cells) + " | " + (plots(scenario, mode) if show_plots else "") + " |")
        return p, t

    def plots(scenario, mode):
        links = []
        for broker, letter in (("petrel", "P"), ("tansu", "T")):
            for line in sorted((l for l in runs if l.get("scenario") == scenario and l.get("broker") == broker
                                and l.get("benchMode") == mode and l.get("ok") and l.get("plotFile")), key=rep_of):
                links.append(f"[{letter}{rep_of(line)}]({line['plotFile']})")
        return " ".join(links)

    for scenario, title, produce_limit in SCENARIOS:
        if scenario not in present:
            continue
        if scenario.startswith("produce"):
            p, t = row(title, "produce MiB/s", "produce", scenario, field("mibPerSecond"), produce_limit, show_plots=True)
            row("", "produce records/s", "produce", scenario, field("recordsPerSecond"))
            row("", "broker CPU µs/record (lower is better)", "produce", scenario, field("brokerCpuMicrosPerRecord"))
            row("", "ack p99 ms (lower is better)", "produce", scenario, lat("p99"))
            row("", "client CPU µs/record (petrel bench)", "produce", scenario, client_cpu)
            row("", "broker peak RSS MiB (lower is better)", "produce", scenario,
                lambda l: l["brokerPeakRssKiB"] / 1024 if l.get("brokerPeakRssKiB") else None)
            targets.append(target_ratio(f"produce ≥ {TARGET_PRODUCE:g}× peer: {title}", p, t, TARGET_PRODUCE))
            if any(l.get("scenario") == scenario and l.get("benchMode") == "consume" for l in runs):
                p, t = row("", "consume from start MiB/s", "consume", scenario, field("mibPerSecond"), "loopback-tcp")
                row("", "consume records/s", "consume", scenario, field("recordsPerSecond"))
                row("", "broker CPU µs/record, consume (lower is better)", "consume", scenario, field("brokerCpuMicrosPerRecord"))
                targets.append(target_ratio(f"consume ≥ {TARGET_CONSUME:g}× peer: {title.replace('produce ', '')}, consumed from the start", p, t, TARGET_CONSUME))
        else:
            rate = values(runs, scenario, "petrel", "e2e", field("rate"))
            rate_t = values(runs, scenario, "tansu", "e2e", field("rate"))
            rate_note = ""
            if scenario == "e2e-half-peak-p1" and (rate or rate_t):
                rate_note = f" (target rate: Petrel {fmt(median(rate))}, Tansu {fmt(median(rate_t))} records/s)"
            row(title + rate_note, "e2e p50 ms (lower is better)", "e2e", scenario, lat("p50"), show_plots=True)
            p99, _ = row("", "e2e p99 ms (lower is better)", "e2e", scenario, lat("p99"))
            row("", "e2e p99.9 ms (lower is better)", "e2e", scenario, lat("p999"))
            row("", "e2e max ms (lower is better)", "e2e", scenario, lat("max"))
            achieved = row("", "records/s achieved", "e2e", scenario, field("recordsPerSecond"))
            for broker, got, want in (("Petrel", achieved[0], rate), ("Tansu", achieved[1], rate_t)):
                if got and want and median(got) < 0.95 * median(want):
                    warnings.append(f"{title}: {broker} sustained {fmt(median(got))} of {fmt(median(want))} records/s targeted: "
                                    "its latencies (from intended send times) include the backlog")
            row("", "broker CPU µs/record (lower is better)", "e2e", scenario, field("brokerCpuMicrosPerRecord"))
            if scenario.startswith("e2e-20k"):
                if p99:
                    m = median(p99)
                    ok = m <= TARGET_E2E_P99_MS
                    targets.append(f"{'PASS' if ok else 'FAIL'}  e2e p99 ≤ {TARGET_E2E_P99_MS:g} ms: {title}: Petrel p99 {fmt(m)} ms (median)")
                else:
                    targets.append(f"N/A   e2e p99 ≤ {TARGET_E2E_P99_MS:g} ms: {title}: no Petrel result")
    md.append("")

    security_section(runs, md, targets)

    for w in warnings:
        md.append(f"> {w}")
        md.append("")
    failed = [l for l in runs if not l.get("ok")] + [l for l in limit_lines if not l.get("ok")]
    md.append("## Targets (median, same run)")
    md.append("")
    md.append("```")
    md.extend(targets)
    md.append("```")
    md.append("")
    if failed:
        md.append("## Failed runs")
        md.append("")
        for l in failed:
            md.append(f"- {l.get('scenario', l.get('limit', '?'))} {l.get('benchMode', '')} [{l.get('broker', 'machine')} rep {l.get('rep', '?')}]: {l.get('error', '?')}")
        md.append("")
    md.append("Raw results: `raw/runs.jsonl` (one `petrel bench --json` line per run, with broker CPU and labels), "
              "`raw/limits.jsonl`, fio and iperf3 JSON in `raw/`; logs in `logs/`.")
    text = "\n".join(md) + "\n"
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    print(text)
    print("\n".join(targets))
    if args.failures:
        print(f"{args.failures} run(s) failed")
    return 0


def security_section(runs, md, targets):
    """PLAINTEXT vs SASL_SSL on one Petrel broker (scenarios tls-*), ratios paired per repetition."""
    present = {l.get("scenario") for l in runs}
    if not present & {"tls-produce-1k-p1", "tls-e2e-20k-p1"}:
        return
    md.append("## Petrel: PLAINTEXT vs SASL_SSL")
    md.append("")
    md.append("One broker with both listeners; SASL_SSL is SCRAM-SHA-512 over TLS 1.3 (AES-GCM), the client "
              "`petrel bench --command-config` with Kafka's client config names. *SASL_SSL ÷ PLAINTEXT* pairs the "
              "runs of one repetition (they run back to back, order alternating).")
    md.append("")
    md.append("| scenario | figure | PLAINTEXT | SASL_SSL | SASL_SSL ÷ PLAINTEXT |")
    md.append("|---|---|---|---|---|")

    def row(title, figure, scenario, mode, metric):
        p = values(runs, scenario, "petrel", mode, metric)
        s = values(runs, scenario, SECURE, mode, metric)
        md.append(f"| {title} | {figure} | {spread(p)} | {spread(s)} | {spread(ratios(s, p), '×')} |")
        return p, s

    if "tls-produce-1k-p1" in present:
        sc = "tls-produce-1k-p1"
        p, s = row("produce 1 KiB, acks=1, 1 partition", "produce MiB/s", sc, "produce", field("mibPerSecond"))
        row("", "broker CPU µs/record (lower is better)", sc, "produce", field("brokerCpuMicrosPerRecord"))
        row("", "client CPU µs/record (petrel bench)", sc, "produce", client_cpu)
        row("", "ack p99 ms (lower is better)", sc, "produce", lat("p99"))
        cp, cs = row("consume from the start, 1 KiB, 1 partition", "consume MiB/s", sc, "consume", field("mibPerSecond"))
        row("", "broker CPU µs/record, consume (lower is better)", sc, "consume", field("brokerCpuMicrosPerRecord"))
        r = ratios(s, p)
        if r:
            m = median(r)
            targets.append(f"{'PASS' if m >= TARGET_TLS_PRODUCE else 'FAIL'}  SASL_SSL produce ≥ {TARGET_TLS_PRODUCE:.0%} of PLAINTEXT: "
                           f"{m:.0%} (paired median; {fmt(median(s))} vs {fmt(median(p))} MiB/s)")
        else:
            targets.append(f"N/A   SASL_SSL produce ≥ {TARGET_TLS_PRODUCE:.0%} of PLAINTEXT: missing result")
        rc = ratios(cs, cp)
        if rc:
            targets.append(f"INFO  SASL_SSL consume ÷ PLAINTEXT: {median(rc):.0%} (no sendfile under TLS: log slices are read "
                           f"into memory and encrypted; {fmt(median(cs))} vs {fmt(median(cp))} MiB/s)")
    if "tls-e2e-20k-p1" in present:
        sc = "tls-e2e-20k-p1"
        row("end-to-end at 20k records/s, 1 KiB, 1 partition", "e2e p50 ms (lower is better)", sc, "e2e", lat("p50"))
        _, s99 = row("", "e2e p99 ms (lower is better)", sc, "e2e", lat("p99"))
        row("", "e2e p99.9 ms (lower is better)", sc, "e2e", lat("p999"))
        row("", "records/s achieved", sc, "e2e", field("recordsPerSecond"))
        row("", "broker CPU µs/record (lower is better)", sc, "e2e", field("brokerCpuMicrosPerRecord"))
        if s99:
            m = median(s99)
            targets.append(f"{'PASS' if m <= TARGET_E2E_P99_MS else 'FAIL'}  e2e p99 ≤ {TARGET_E2E_P99_MS:g} ms over SASL_SSL at 20k records/s: "
                           f"{fmt(m)} ms (median)")
    md.append("")


def target_ratio(label, p, t, goal):
    if not p or not t:
        return f"N/A   {label}: missing {'Petrel' if not p else 'Tansu'} result"
    r = median(p) / median(t)
    return f"{'PASS' if r >= goal else 'FAIL'}  {label}: {r:.2f}× (Petrel {fmt(median(p))} vs Tansu {fmt(median(t))} MiB/s)"


if __name__ == "__main__":
    sys.exit(main())
