#!/usr/bin/env python3
"""Records vLLM's KV-event ZMQ messages as raw bytes, for Rotor's decoder fixtures.

Binds a SUB socket on ENDPOINT (vLLM's publisher connects when its endpoint names a host), and
writes each 3-frame message [topic, seq (8 B big-endian), msgpack payload] to OUT_DIR as
`msg-SEQ.topic`, `msg-SEQ.seq`, `msg-SEQ.payload` until it has MAX messages or SECONDS passed.

usage: record_kv_events.py ENDPOINT OUT_DIR [MAX] [SECONDS]   (needs pyzmq)
"""
import os
import sys
import time

import zmq

endpoint, out = sys.argv[1], sys.argv[2]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 50
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 900
os.makedirs(out, exist_ok=True)
sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.SUBSCRIBE, b"")
sock.bind(endpoint)
deadline = time.time() + seconds
n = 0
while n < limit and time.time() < deadline:
    if not sock.poll(500):
        continue
    frames = sock.recv_multipart()
    seq = int.from_bytes(frames[1], "big") if len(frames) > 1 else n
    for name, data in zip(("topic", "seq", "payload"), frames):
        with open(os.path.join(out, f"msg-{seq:04d}.{name}"), "wb") as f:
            f.write(data)
    print(f"message seq {seq}: {len(frames)} frames, payload {len(frames[-1])} B", flush=True)
    n += 1
