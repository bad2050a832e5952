#!/usr/bin/env python3
"""Kafka capture proxy: records real client/broker frames as golden fixtures.

    capture_proxy.py --listen 127.0.0.1:29092 --upstream 127.0.0.1:19092 --out DIR [--label NAME]

Sits between Kafka clients and a broker (stdlib asyncio only), splits both directions into
Kafka frames (int32 big-endian size prefix), remembers correlation id -> (api key, version)
from each request, and writes every frame WITHOUT its 4-byte size prefix as lowercase hex to

    DIR/<api>_<request|response>_v<N>_<nnn>.hex

<api> is the snake-case API name, N the request's api version (responses use the version of
the request they answer), nnn a 3-digit counter per (api, version). A response gets the same
nnn as its request and is only kept if its request was kept, so request/response pairs line
up. Limits: at most --per-key frames per (api, direction, version) (default 3; --per-key-api produce=5 overrides one api), at most
--max-files files in DIR (default 148), frames whose hex exceeds --max-bytes (default 64 KiB)
are skipped. Counters resume from the files already in DIR, so several runs (one per client)
can fill the same directory. Every kept file is appended to DIR/MANIFEST.tsv with the
request's client id and the --label.

Clients learn broker addresses from Metadata, so the broker must advertise the PROXY's
address (e.g. tansu --advertised-listener-url tcp://127.0.0.1:<proxy port>).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import struct
import sys

API_NAMES = {
    0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata", 4: "leader_and_isr", 5: "stop_replica",
    6: "update_metadata", 7: "controlled_shutdown", 8: "offset_commit", 9: "offset_fetch",
    10: "find_coordinator", 11: "join_group", 12: "heartbeat", 13: "leave_group", 14: "sync_group",
    15: "describe_groups", 16: "list_groups", 17: "sasl_handshake", 18: "api_versions",
    19: "create_topics", 20: "delete_topics", 21: "delete_records", 22: "init_producer_id",
    23: "offset_for_leader_epoch", 24: "add_partitions_to_txn", 25: "add_offsets_to_txn",
    26: "end_txn", 27: "write_txn_markers", 28: "txn_offset_commit", 29: "describe_acls",
    30: "create_acls", 31: "delete_acls", 32: "describe_configs", 33: "alter_configs",
    34: "alter_replica_log_dirs", 35: "describe_log_dirs", 36: "sasl_authenticate",
    37: "create_partitions", 38: "create_delegation_token", 39: "renew_delegation_token",
    40: "expire_delegation_token", 41: "describe_delegation_token", 42: "delete_groups",
    43: "elect_leaders", 44: "incremental_alter_configs", 45: "alter_partition_reassignments",
    46: "list_partition_reassignments", 47: "offset_delete", 48: "describe_client_quotas",
    49: "alter_client_quotas", 50: "describe_user_scram_credentials", 51: "alter_user_scram_credentials",
    55: "describe_quorum", 57: "update_features", 60: "describe_cluster", 61: "describe_producers",
    64: "unregister_broker", 65: "describe_transactions", 66: "list_transactions",
    68: "consumer_group_heartbeat", 69: "consumer_group_describe", 71: "get_telemetry_subscriptions",
    72: "push_telemetry", 74: "list_client_metrics_resources", 75: "describe_topic_partitions",
}

FILE_RE = re.compile(r"^([a-z0-9_]+)_(request|response)_v(\d+)_(\d{3})\.hex$")


def api_name(key: int) -> str:
    return API_NAMES.get(key, f"api{key}")


class Recorder:
    def __init__(self, out: str, per_key: int, max_files: int, max_bytes: int, label: str, verbose: bool,
                 per_api: dict[str, int] | None = None):
        self.out = out
        self.per_key = per_key
        self.per_api = per_api or {}
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.label = label
        self.verbose = verbose
        os.makedirs(out, exist_ok=True)
        self.count: dict[tuple[str, str, int], int] = {}
        self.next_nnn: dict[tuple[str, int], int] = {}
        self.files = 0
        for f in os.listdir(out):
            m = FILE_RE.match(f)
            if not m:
                continue
            self.files += 1
            k = (m.group(1), m.group(2), int(m.group(3)))
            self.count[k] = self.count.get(k, 0) + 1
            pk = (m.group(1), int(m.group(3)))
            self.next_nnn[pk] = max(self.next_nnn.get(pk, 0), int(m.group(4)) + 1)
        self.manifest = open(os.path.join(out, "MANIFEST.tsv"), "a", buffering=1)
        self.seen = 0

    def _write(self, name: str, frame: bytes, client_id: str, corr: int) -> None:
        with open(os.path.join(self.out, name), "w") as f:
            f.write(frame.hex() + "\n")
        self.files += 1
        self.manifest.write(f"{name}\t{self.label}\t{client_id}\tcorr={corr}\t{len(frame)} bytes\n")
        if self.verbose:
            print(f"capture: {name} ({len(frame)} bytes, {client_id})", file=sys.stderr)

    def request(self, api: int, ver: int, corr: int, client_id: str, frame: bytes) -> int | None:
        """Returns the nnn used for this request, or None if not kept."""
        self.seen += 1
        n = api_name(api)
        k = (n, "request", ver)
        if self.count.get(k, 0) >= self.per_api.get(n, self.per_key) or self.files + 2 > self.max_files:
            return None
        if 2 * len(frame) + 1 > self.max_bytes:
            return None
        nnn = self.next_nnn.get((n, ver), 0)
        if nnn > 999:
            return None
        self.next_nnn[(n, ver)] = nnn + 1
        self.count[k] = self.count.get(k, 0) + 1
        self._write(f"{n}_request_v{ver}_{nnn:03d}.hex", frame, client_id, corr)
        return nnn

    def response(self, api: int, ver: int, nnn: int, corr: int, client_id: str, frame: bytes) -> None:
        n = api_name(api)
        k = (n, "response", ver)
        if self.files + 1 > self.max_files or 2 * len(frame) + 1 > self.max_bytes:
            return
        self.count[k] = self.count.get(k, 0) + 1
        self._write(f"{n}_response_v{ver}_{nnn:03d}.hex", frame, client_id, corr)


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        hdr = await reader.readexactly(4)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    (size,) = struct.unpack(">i", hdr)
    if size < 0 or size > 256 * 1024 * 1024:
        raise ValueError(f"bad frame size {size}")
    try:
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def parse_request_header(frame: bytes) -> tuple[int, int, int, str]:
    api, ver, corr = struct.unpack(">hhi", frame[:8])
    client_id = ""
    if len(frame) >= 10:
        (clen,) = struct.unpack(">h", frame[8:10])
        if clen >= 0:
            client_id = frame[10:10 + clen].decode("utf-8", "replace")
    return api, ver, corr, client_id


async def handle(rec: Recorder, up_host: str, up_port: int, creader, cwriter) -> None:
    try:
        ureader, uwriter = await asyncio.open_connection(up_host, up_port)
    except OSError as e:
        print(f"capture: upstream connect failed: {e}", file=sys.stderr)
        cwriter.close()
        return
    inflight: dict[int, tuple[int, int, int | None, str]] = {}

    async def c2u():
        while True:
            frame = await read_frame(creader)
            if frame is None:
                break
            if len(frame) >= 8:
                api, ver, corr, cid = parse_request_header(frame)
                nnn = rec.request(api, ver, corr, cid, frame)
                inflight[corr] = (api, ver, nnn, cid)
            uwriter.write(struct.pack(">i", len(frame)) + frame)
            await uwriter.drain()

    async def u2c():
        while True:
            frame = await read_frame(ureader)
            if frame is None:
                break
            if len(frame) >= 4:
                (corr,) = struct.unpack(">i", frame[:4])
                info = inflight.pop(corr, None)
                if info is not None and info[2] is not None:
                    rec.response(info[0], info[1], info[2], corr, info[3], frame)
            cwriter.write(struct.pack(">i", len(frame)) + frame)
            await cwriter.drain()

    tasks = [asyncio.create_task(c2u()), asyncio.create_task(u2c())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for w in (cwriter, uwriter):
            try:
                w.close()
            except Exception:
                pass


def hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="HOST:PORT to accept clients on")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the real broker")
    ap.add_argument("--out", required=True, help="fixture directory")
    ap.add_argument("--label", default="", help="free text recorded in MANIFEST.tsv (e.g. the client)")
    ap.add_argument("--per-key", type=int, default=3)
    ap.add_argument("--per-key-api", action="append", default=[], metavar="API=N",
                    help="override --per-key for one api (snake name), e.g. produce=5")
    ap.add_argument("--max-files", type=int, default=148)
    ap.add_argument("--max-bytes", type=int, default=64 * 1024)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    per_api = {k: int(v) for k, v in (x.split("=", 1) for x in a.per_key_api)}
    rec = Recorder(a.out, a.per_key, a.max_files, a.max_bytes, a.label, a.verbose, per_api)
    lh, lp = hostport(a.listen)
    uh, up = hostport(a.upstream)
    server = await asyncio.start_server(lambda r, w: handle(rec, uh, up, r, w), lh, lp)
    print(f"capture proxy listening on {lh}:{server.sockets[0].getsockname()[1]} -> {uh}:{up}, out={a.out}",
          flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
