#!/usr/bin/env python3
"""Runs one `petrel bench` command with a time limit and appends one JSON line to a results file.

The line is bench's own final --json line plus: the run's labels (--label k=v), the broker's CPU
seconds over the run (utime+stime of --broker-pid from /proc/<pid>/stat, all threads) and per record,
the broker's peak RSS, and the client's own CPU seconds (rusage of the child).

Exit status: 0 when bench succeeded and the broker is still alive, 1 otherwise (a line with
"ok": false and the error is still written, so the report can show the failure).

usage: run_one.py --out FILE --broker-pid PID --timeout SECONDS [--label k=v ...] -- petrel bench ...
"""
import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime+stime of a process (all its threads), in seconds; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime, stime are fields 14, 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--broker-pid", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--log", help="append bench's stderr (human summary) here")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        parser.error("no command")

    labels = {}
    for item in args.label:
        key, _, value = item.partition("=")
        labels[key] = value

    line = dict(labels)
    line["command"] = " ".join(cmd)
    error = None
    cpu0 = cpu_seconds(args.broker_pid)
    if cpu0 is None:
        error = f"broker pid {args.broker_pid} is not running before the run"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    stdout = ""
    stderr = ""
    if error is None:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

        def stop(signum, _frame):
            # bench runs in its own session (so a timeout can kill its whole group): pass the stop on.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            sys.exit(128 + signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            stdout, stderr = proc.communicate(timeout=args.timeout)
            if proc.returncode != 0:
                error = f"bench exited {proc.returncode}: {stderr.strip().splitlines()[-1] if stderr.strip() else '(no output)'}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            error = f"bench did not finish within {args.timeout:.0f} s (killed)"
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = cpu_seconds(args.broker_pid)
    if error is None and (cpu1 is None or not alive(args.broker_pid)):
        error = "the broker died during the run"

    report = None
    for text in reversed(stdout.strip().splitlines()):
        text = text.strip()
        if text.startswith("{"):
            try:
                report = json.loads(text)
                break
            except json.JSONDecodeError:
                pass
    if report is None and error is None:
        error = "bench printed no JSON line"
    if report:
        line.update(report)
    line["wallSeconds"] = round(wall, 3)
    line["clientCpuSeconds"] = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3)
    if cpu0 is not None and cpu1 is not None:
        broker_cpu = cpu1 - cpu0
        line["brokerCpuSeconds"] = round(broker_cpu, 3)
        records = (report or {}).get("records") or 0
        if records > 0:
            line["brokerCpuMicrosPerRecord"] = round(broker_cpu * 1e6 / records, 4)
    line["brokerPeakRssKiB"] = peak_rss_kib(args.broker_pid)
    line["ok"] = error is None
    if error:
        line["error"] = error
    with open(args.out, "a") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")
    if args.log:
        with open(args.log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{stderr}\n")
    summary = stderr.strip().splitlines()[:1]
    cpu_text = f", broker {line.get('brokerCpuMicrosPerRecord', '?')} µs CPU/record" if error is None else ""
    print(f"    {labels.get('scenario', '?')} [{labels.get('broker', '?')} rep {labels.get('rep', '?')}]: "
          + (error if error else (summary[0] if summary else "ok") + cpu_text), file=sys.stderr)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
