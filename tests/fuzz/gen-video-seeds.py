#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Writes seed inputs for fuzz-video-command (record format in fuzz-video-command.c): whole decoder and
# encoder sessions as the guest driver sends them (virtio-video-v3.md §7.3), with null frames in guest
# memory. Run from the source root: tests/fuzz/gen-video-seeds.py
import os
import struct

BASE = 0x100000
OUT = os.path.join(os.path.dirname(__file__), 'corpus', 'fuzz-video-command')


def rec(op, payload):
    return struct.pack('<BH', op, len(payload)) + payload


def cmd(payload, chunk=0):
    return rec(chunk & 0x3f, payload)


def hdr(t, sid):
    return struct.pack('<II', t, sid)


def queue_op(t, sid, q):
    return cmd(hdr(t, sid) + struct.pack('<I4x', q))


def write(off, data):
    return rec(0x80, struct.pack('<I', off) + data)


def frame(w, h, seq):
    n = w * h * 3 // 2
    return b'VVNF' + struct.pack('<HHII', w, h, n, seq) + bytes((i * 7 + seq) & 0xff for i in range(n))


def stream_create(sid, fmt=0x1006):
    return cmd(hdr(0x101, sid) + struct.pack('<III4x', 0, 0, fmt) + b'seed'.ljust(64, b'\0'))


def resource_create(sid, q, rid, entries, planes=1, counts=None):
    counts = counts or [len(entries)] + [0] * 7
    body = struct.pack('<IIII', q, rid, 1, planes) + bytes(32) + struct.pack('<8I', *counts)
    ents = b''.join(struct.pack('<QI4x', BASE + a, n) for a, n in entries)
    return cmd(hdr(0x104, sid) + body + ents, chunk=7)


def resource_queue(sid, q, rid, ts, size):
    return cmd(hdr(0x105, sid) + struct.pack('<IIQI', q, rid, ts, 1) + struct.pack('<8I', size, *[0] * 7) + bytes(4))


def params(sid, q, fmt, w, h, planes, ext=True):
    p = struct.pack('<IIIIII', q, fmt, w, h, 0, 0) + bytes(16) + struct.pack('<II', 0, len(planes))
    p += b''.join(struct.pack('<II', s, st) for s, st in planes) + bytes(8 * (8 - len(planes)))
    if ext:
        return cmd(hdr(0x10E, sid) + p + struct.pack('<I4x', 0))
    return cmd(hdr(0x109, sid) + p)


def decoder_session():
    f = frame(16, 8, 0) + frame(16, 8, 1) + frame(32, 16, 2)
    s = queue_op(0x100, 0, 0x100) + queue_op(0x100, 0, 0x101)
    s += rec(0x40, b'') + rec(0x40, b'')
    s += stream_create(1) + queue_op(0x10D, 1, 0x100) + queue_op(0x10D, 1, 0x101)
    s += params(1, 0x100, 0x1006, 16, 8, [(4096, 0)])
    s += write(0x1000, f)
    s += resource_create(1, 0x100, 1, [(0x1000, 700), (0x1000 + 700, 4096 - 700)])
    s += resource_queue(1, 0x100, 1, 1000, len(f))
    s += queue_op(0x108, 1, 0x101)
    for i in range(3):
        s += resource_create(1, 0x101, 10 + i, [(0x4000 + i * 0x1000, 192)])
        s += resource_queue(1, 0x101, 10 + i, 0, 0)
    s += cmd(hdr(0x103, 1))
    s += queue_op(0x107, 1, 0x101) + queue_op(0x106, 1, 0x101)
    s += params(1, 0x101, 4, 32, 16, [(768, 32)], ext=False)
    s += resource_create(1, 0x101, 20, [(0x8000, 768)]) + resource_queue(1, 0x101, 20, 0, 0)
    s += queue_op(0x107, 1, 0x100) + cmd(hdr(0x102, 1))
    return s


def encoder_session():
    s = rec(0xc0, b'')
    s += stream_create(2) + params(2, 0x100, 3, 16, 8, [(192, 16)])
    s += cmd(hdr(0x10C, 2) + struct.pack('<I4xI4x', 1, 500000))
    s += cmd(hdr(0x10C, 2) + struct.pack('<I4x', 4))
    s += cmd(hdr(0x10B, 2) + struct.pack('<I4x', 1))
    s += cmd(hdr(0x10A, 0) + struct.pack('<I4xI4x', 2, 0x1006))
    s += write(0x1000, bytes(range(192)))
    s += resource_create(2, 0x100, 1, [(0x1000, 192)]) + resource_create(2, 0x101, 2, [(0x2000, 4096)])
    s += resource_create(2, 0x101, 3, [(0x3000, 4096)])
    s += resource_queue(2, 0x100, 1, 77, 192) + resource_queue(2, 0x101, 2, 0, 0)
    s += resource_queue(2, 0x101, 3, 0, 0) + cmd(hdr(0x103, 2)) + cmd(hdr(0x102, 2))
    return s


os.makedirs(OUT, exist_ok=True)
for name, data in (('decoder-session', decoder_session()), ('encoder-session', encoder_session())):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)
