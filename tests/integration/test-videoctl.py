#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""
videoctl against the real virtio-videod and vhost-user-video worker on a private dbus-daemon
(management-plane.md §6.9), plus the libvirt hook (§3.4) and the bash completion. Prints TAP.

Every verb is run as a user would run it; JSON is parsed with the json module, never grepped. Waiting is
done by polling with a deadline, never by sleeping as an assertion. Runs as root (polkit is bypassed) and
as a normal user (a fake polkit authority that says yes is put on the bus).
"""
import argparse
import errno
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

DEADLINE = 30.0  # seconds; a generous safety limit for any single wait
FAILED_RE = re.compile(r"^Failed to \S.* .*: .+$")
TAP = {"n": 0, "failed": 0}


def ok(cond, name, diag=None):
    TAP["n"] += 1
    if cond:
        print(f"ok {TAP['n']} - {name}", flush=True)
    else:
        TAP["failed"] += 1
        print(f"not ok {TAP['n']} - {name}", flush=True)
        if diag is not None:
            for line in str(diag).splitlines() or [""]:
                print(f"#   {line}", flush=True)
    return cond


def diag(msg):
    for line in str(msg).splitlines():
        print(f"# {line}", flush=True)


def poll_until(fn, what, timeout=DEADLINE, interval=0.02):
    """Calls fn until it returns a true value; returns it, or None after the deadline."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            diag(f"timed out waiting for {what}")
            return None
        time.sleep(interval)


class Env:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="vctl-", dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.bus_pid = None
        self.bus_proc = None
        self.polkit = None
        self.daemon = None
        self.address = None
        self.rt = None
        self.devdir = os.path.join(self.tmp, "dev")
        os.mkdir(self.devdir)
        self.config = os.path.join(self.tmp, "virtio-videod.conf")
        with open(self.config, "w") as f:
            f.write(f"[Daemon]\nAllowedHostDevices={self.devdir}/video*\n")
        self.env = dict(os.environ)
        self.env["LC_ALL"] = "C.UTF-8"
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)

    # --- processes -------------------------------------------------------------------------------------

    def start_bus(self):
        conf = os.path.join(self.tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={self.tmp}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
""")
        self.bus_proc = subprocess.Popen(
            ["dbus-daemon", "--nofork", "--nopidfile", "--nosyslog", "--config-file", conf, "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = read_line(self.bus_proc.stdout, DEADLINE)
        if not line:
            raise RuntimeError("dbus-daemon did not print its address")
        self.address = line.strip()
        self.env["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        if os.geteuid() != 0:
            self.start_polkit("yes")

    def start_polkit(self, verdict):
        """An authority answering every query with verdict; its log of queries goes to polkit.log."""
        self.stop_polkit()
        self.polkit_log = os.path.join(self.tmp, "polkit.log")
        with open(self.polkit_log, "a") as log:
            self.polkit = subprocess.Popen([self.args.fake_polkit, self.address, verdict], stdout=subprocess.PIPE,
                                           stderr=log, text=True)
        if read_line(self.polkit.stdout, DEADLINE) != "ready\n":
            raise RuntimeError("the fake polkit authority did not start")

    def stop_polkit(self):
        if self.polkit and self.polkit.poll() is None:
            self.polkit.terminate()
            self.polkit.wait(DEADLINE)
            self.polkit.stdout.close()
        self.polkit = None

    def polkit_queries(self):
        try:
            with open(self.polkit_log) as f:
                return [l.split()[-1] for l in f if l.startswith("fake-polkit: check ")]
        except (OSError, AttributeError):
            return []

    def start_daemon(self, program, rt_name):
        self.rt = os.path.join(self.tmp, rt_name)
        env = dict(self.env)
        env["VIRTIO_VIDEOD_WORKER"] = self.args.worker
        env.pop("NOTIFY_SOCKET", None)
        self.daemon_log = open(os.path.join(self.tmp, rt_name + ".log"), "w")
        self.daemon = subprocess.Popen(
            [program, f"--bus-address={self.address}", f"--runtime-dir={self.rt}", f"--config={self.config}",
             "--no-idle-exit"],
            env=env, stdout=self.daemon_log, stderr=subprocess.STDOUT)
        return poll_until(lambda: self.daemon.poll() is None and
                          self.vc("show", "-P", "Version").returncode == 0, "the daemon on the bus")

    def stop_daemon(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        rc = self.daemon.returncode if self.daemon else None
        self.daemon = None
        return rc

    def daemon_log_text(self):
        self.daemon_log.flush()
        with open(self.daemon_log.name) as f:
            return f.read()

    def cleanup(self):
        self.stop_daemon()
        self.stop_polkit()
        for p in (self.bus_proc,):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(DEADLINE)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- running videoctl ------------------------------------------------------------------------------

    def vc(self, *argv, input=None, env=None):
        r = subprocess.run([self.args.videoctl, *argv], capture_output=True, text=True, input=input,
                           env=env or self.env, timeout=DEADLINE)
        if argv and argv[0] == "probe" and r.returncode == 0:
            # The probe's connection is gone when videoctl exits, but the worker reports the disconnect
            # to the daemon asynchronously: until it has, the device is still "connected" and a detach
            # without --force is refused (DeviceConnected), as it would be for a VM. Wait for that.
            name = argv[-1]
            poll_until(lambda: self.state(name) != "connected", f"{name} back to listening after probe")
        return r

    def props(self, name):
        r = self.vc("show", "-a", name)
        if r.returncode != 0:
            return None
        return dict(line.split("=", 1) for line in r.stdout.splitlines())

    def state(self, name):
        r = self.vc("show", "-P", "State", name)
        return r.stdout.strip() if r.returncode == 0 else None


def read_line(stream, timeout):
    """One line from a pipe within timeout seconds, or None."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
        return stream.readline()
    finally:
        sel.close()


class LineReader:
    """Reads a child's stdout (or stderr) line by line with deadlines, without blocking on partial lines."""

    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)
        self.buf = b""
        self.eof = False

    def next(self, timeout=DEADLINE):
        end = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.fd, selectors.EVENT_READ)
        try:
            while b"\n" not in self.buf and not self.eof:
                left = end - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError as ex:  # a pty master reads EIO once the last slave is closed
                    if ex.errno != errno.EIO:
                        raise
                    chunk = b""
                if not chunk:
                    self.eof = True
                self.buf += chunk
        finally:
            sel.close()
        if b"\n" not in self.buf:
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def wait_for(self, pred, timeout=DEADLINE):
        """Lines until one satisfies pred; returns (line, lines seen before it)."""
        end = time.monotonic() + timeout
        seen = []
        while True:
            line = self.next(max(0.0, end - time.monotonic()))
            if line is None:
                return None, seen
            if pred(line):
                return line, seen
            seen.append(line)


def is_failure(r, verb_prefix=None):
    """Exit status exactly 1, nothing on stdout, and a "Failed to <verb> <object>: <reason>" line."""
    lines = r.stderr.strip().splitlines()
    good = r.returncode == 1 and r.stdout == "" and len(lines) >= 1 and all(FAILED_RE.match(l) for l in lines)
    if verb_prefix:
        good = good and lines[0].startswith(verb_prefix)
    return good


def show(r):
    return f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def table_rows(text):
    """Data rows of a table printed with a legend: header, rows, blank line, footer."""
    lines = text.splitlines()
    return lines[0].split(), [l.split() for l in lines[1:] if l.strip() and not l.endswith(".")], lines[-1]


# --- the tests ---------------------------------------------------------------------------------------------


def test_empty(e):
    r = e.vc("list")
    header, rows, footer = table_rows(r.stdout)
    ok(r.returncode == 0 and header == ["VM", "ALIAS", "HOST-DEVICE", "ROLE", "STATE", "SOCKET"] and rows == []
       and footer == "No devices.", "list: header and 'No devices.' when nothing is attached", show(r))
    r = e.vc("list", "--no-legend")
    ok(r.returncode == 0 and r.stdout == "", "list --no-legend: nothing at all when empty", show(r))
    r = e.vc("list", "--json=short")
    ok(r.returncode == 0 and json.loads(r.stdout) == [], "list --json=short: []", show(r))
    r = e.vc()
    ok(r.returncode == 0 and r.stdout.splitlines()[-1] == "No devices.", "no verb means list", show(r))

    r = e.vc("show")
    p = dict(l.split("=", 1) for l in r.stdout.splitlines()) if r.returncode == 0 else {}
    ok(r.returncode == 0 and p.get("Version") and p.get("SocketDirectory") == e.rt and p.get("NDevices") == "0"
       and "virtio-video" in p.get("Features", "").split()
       and p.get("AllowedHostDevices") == f"{e.devdir}/video*",
       "show: the manager's properties as Key=Value", show(r))
    r = e.vc("show", "-P", "NDevices")
    ok(r.returncode == 0 and r.stdout == "0\n", "show -P NDevices: the bare value", show(r))
    r = e.vc("show", "-p", "Version", "-p", "SocketDirectory")
    ok(r.returncode == 0 and [l.split("=")[0] for l in r.stdout.splitlines()] == ["Version", "SocketDirectory"],
       "show -p -p: only the named properties", show(r))
    r = e.vc("show", "--value", "-p", "SocketDirectory")
    ok(r.returncode == 0 and r.stdout == e.rt + "\n", "show --value -p: values only", show(r))

    r = e.vc("list-host-devices")
    header, rows, footer = table_rows(r.stdout)
    ok(r.returncode == 0 and header == ["DEVICE", "DRIVER", "CARD", "ROLES", "ATTACHED"] and rows == []
       and footer == "No host devices.", "list-host-devices: empty table without codec nodes", show(r))
    r = e.vc("list-host-devices", "--json=short")
    ok(r.returncode == 0 and json.loads(r.stdout) == [], "list-host-devices --json: []", show(r))
    r = e.vc("detach", "--vm", "nothing-here", "--all")
    ok(r.returncode == 0 and r.stdout == "" and r.stderr == "",
       "detach --vm VM --all with nothing attached exits 0 silently", show(r))


def test_probe_ffmpeg(e):
    """probe on a libavcodec decoder: capabilities only, then --stream with a coded stream."""
    r = e.vc("probe", "vm1/ff")
    ok(r.returncode == 0 and "Device: virtio-video decoder, backend 'ffmpeg-decoder'" in r.stdout
       and re.search(r"^\s+H264\s", r.stdout, re.M) and "Decode: skipped" in r.stdout,
       "probe on an ffmpeg decoder without --stream: capabilities, decode skipped", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "ffmpeg", "--role", "encoder", "--alias", "ffe")
    ok(r.returncode == 0 and poll_until(lambda: e.state("vm1/ffe") == "listening", "vm1/ffe listening"),
       "attach --backend ffmpeg --role encoder: listening", show(r))
    r = e.vc("probe", "vm1/ffe")
    m = re.search(r"Encode: ok, (\d+) frames into (\d+) packets", r.stdout)
    ok(r.returncode == 0 and "backend 'ffmpeg-encoder'" in r.stdout and re.search(r"^\s+H264\s", r.stdout, re.M)
       and m and int(m.group(2)) > 0, "probe on an ffmpeg encoder: an encode of generated pictures", show(r))
    ok(e.vc("detach", "vm1/ffe").returncode == 0, "detach vm1/ffe")
    r = e.vc("probe", "--stream", os.path.join(e.tmp, "missing.h264"), "--stream-format", "h264", "vm1/ff")
    ok(is_failure(r, "Failed to probe vm1/ff: ") and "No such file" in r.stderr,
       "probe --stream of a missing file: exit 1", show(r))
    r = e.vc("probe", "--stream", "x", "--stream-format", "divx", "vm1/ff")
    ok(r.returncode == 1 and r.stdout == "" and "divx" in r.stderr, "probe --stream-format divx: exit 1", show(r))
    if not e.args.make_stream:
        diag("make-stream not built: probe --stream not tested")
        return
    stream = os.path.join(e.tmp, "s.h264")
    m = subprocess.run([e.args.make_stream, "--codec", "h264", "--size", "128x96", "--frames", "10", "--output",
                        stream], capture_output=True, text=True, timeout=DEADLINE)
    ok(m.returncode == 0 and os.path.getsize(stream) > 0, "make-stream wrote an H.264 stream", m.stderr)
    r = e.vc("probe", "--stream", stream, "--stream-format", "h264", "vm1/ff")
    ok(r.returncode == 0 and "Decode: ok, 10 frames of 128x96" in r.stdout,
       "probe --stream FILE --stream-format h264 on an ffmpeg decoder: all frames decoded", show(r))
    r = e.vc("probe", "--json=short", "--stream", stream, "--stream-format", "h264", "vm1/ff")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and j and j.get("device_name") == "ffmpeg-decoder"
       and j.get("decode") == {"ok": True, "frames": 10, "width": 128, "height": 96,
                               "resolution_changes": j["decode"].get("resolution_changes")},
       "probe --json --stream: the decode result", show(r))


def test_attach(e, worker_backends):
    r = e.vc("attach", "--vm", "vm1", "--backend", "null")
    sock = r.stdout[:-1] if r.stdout.endswith("\n") else None
    ok(r.returncode == 0 and r.stderr == "" and sock and "\n" not in sock
       and sock == os.path.join(e.rt, "vm", "vm1", "video0.sock"),
       "attach --backend null: stdout is exactly the socket path, alias video0 by default", show(r))
    ok(sock and os.path.exists(sock) and (os.stat(sock).st_mode & 0o170000) == 0o140000,
       "attach: the socket exists and is a socket", sock)

    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "dec1", "--json=short")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and isinstance(j, dict) and set(j) == {"vm", "alias", "socket", "object"}
       and j["vm"] == "vm1" and j["alias"] == "dec1" and j["socket"] == os.path.join(e.rt, "vm", "vm1", "dec1.sock")
       and j["object"] == "/org/virtiovideo/video1/device/vm1/dec1" and os.path.exists(j["socket"]),
       "attach --alias --json=short: the object with keys vm, alias, socket, object", show(r))

    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--role", "encoder", "--alias", "enc", "--json=pretty")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and len(r.stdout.splitlines()) > 1 and j and j["alias"] == "enc",
       "attach --json=pretty: several lines, valid JSON", show(r))
    ok(e.vc("show", "-P", "Role", "vm1/enc").stdout == "encoder\n", "attach --role encoder: Role=encoder")

    r = e.vc("attach", "--vm", "vm1", "--backend", "ffmpeg", "--alias", "ff")
    ok(r.returncode == 0 and r.stdout == os.path.join(e.rt, "vm", "vm1", "ff.sock") + "\n",
       "attach --backend ffmpeg: the socket path", show(r))
    p = e.props("vm1/ff") or {}
    ok(p.get("Backend") == "ffmpeg" and p.get("HostDevice") == "" and p.get("Role") == "decoder",
       "attach --backend ffmpeg: Backend=ffmpeg, no host device, a decoder", p)
    # The worker in this build may lack the ffmpeg backend (it says so in --help); the daemon then
    # reports the device failed. Either way the state must settle to the one this build implies.
    want = "listening" if "ffmpeg-decoder" in worker_backends else "failed"
    st = poll_until(lambda: e.state("vm1/ff") == want and want, f"vm1/ff to become {want}")
    ok(st == want, f"attach --backend ffmpeg: the device settles {want} "
       f"(worker backends: {' '.join(worker_backends) or '?'})", e.state("vm1/ff"))
    if want == "listening":
        test_probe_ffmpeg(e)
    else:
        diag("no ffmpeg backends in this worker: probe of an ffmpeg device not tested")
    r = e.vc("detach", "vm1/ff")
    ok(r.returncode == 0 and r.stdout == "" and e.vc("show", "vm1/ff").returncode == 1,
       "detach VM/ALIAS: the device is gone", show(r))

    # idempotent attach
    created = e.vc("show", "-P", "CreatedTimestamp", "vm1/dec1").stdout
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "dec1", "--if-missing")
    ok(r.returncode == 0 and r.stdout == os.path.join(e.rt, "vm", "vm1", "dec1.sock") + "\n"
       and e.vc("show", "-P", "CreatedTimestamp", "vm1/dec1").stdout == created,
       "attach --if-missing with the same parameters: same socket, same device", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "dec1", "--role", "encoder", "--if-missing")
    ok(is_failure(r, "Failed to attach ") and "exists" in r.stderr,
       "attach --if-missing with other parameters: DeviceExists, exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "dec1")
    ok(is_failure(r, "Failed to attach null to vm1: ") and "exists" in r.stderr,
       "a second attach of the same alias fails: 'Failed to attach ...: ...', exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "dec1", "--replace")
    ok(r.returncode == 0 and r.stdout == os.path.join(e.rt, "vm", "vm1", "dec1.sock") + "\n"
       and e.vc("show", "-P", "CreatedTimestamp", "vm1/dec1").stdout not in ("", created),
       "attach --replace: a new device behind the same socket path", show(r))
    ok(poll_until(lambda: e.state("vm1/dec1") == "listening", "vm1/dec1 listening") is not None,
       "the replaced device listens again")

    # errors
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "Bad/Alias")
    ok(is_failure(r, "Failed to attach null to vm1: ") and "alias" in r.stderr.lower(),
       "attach with a bad alias: InvalidArgs, exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--device", f"{e.devdir}/video99")
    ok(is_failure(r, f"Failed to attach {e.devdir}/video99 to vm1: ") and "does not exist" in r.stderr,
       "attach a missing host device: NoSuchHostDevice, exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--device", "/dev/null")
    ok(is_failure(r, "Failed to attach /dev/null to vm1: ") and "AllowedHostDevices" in r.stderr,
       "attach a host device outside the allow-list: HostDeviceNotAllowed, exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "bogus")
    ok(is_failure(r, "Failed to attach bogus to vm1: ") and "Backend" in r.stderr,
       "attach with an unknown backend: InvalidArgs, exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--protocol", "virtio-media")
    ok(is_failure(r, "Failed to attach null to vm1: ") and "virtio-media" in r.stderr,
       "attach with an unsupported protocol: UnsupportedProtocol, exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--socket", "/tmp/elsewhere.sock")
    ok(is_failure(r, "Failed to attach null to vm1: ") and "/tmp/elsewhere.sock" in r.stderr,
       "attach with a socket outside the socket directory: SocketPathNotAllowed, exit 1", show(r))
    # the client transport: the worker connects to the socket QEMU serves
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--transport", "client")
    ok(is_failure(r, "Failed to attach null to vm1: ") and "SocketPath" in r.stderr,
       "attach --transport client without --socket: InvalidArgs, exit 1", show(r))
    qsock = os.path.join(e.tmp, "qemu-vm1.sock")
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "cl", "--transport", "client",
             "--socket", qsock)
    ok(r.returncode == 0 and r.stdout == qsock + "\n" and e.vc("show", "-P", "Transport", "vm1/cl").stdout == "client\n",
       "attach --transport client --socket PATH: the device connects to PATH", show(r))
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(qsock)
    lsock.listen(1)
    lsock.settimeout(DEADLINE)
    try:
        conn, _ = lsock.accept()
    except OSError:
        conn = None
    ok(conn is not None and poll_until(lambda: e.state("vm1/cl") == "connected", "vm1/cl connected") is not None,
       "the worker connected to the socket QEMU listens on: connected")
    ok(e.vc("detach", "--force", "vm1/cl").returncode == 0 and os.path.exists(qsock),
       "detach --force vm1/cl: QEMU's socket stays")
    if conn:
        conn.close()
    lsock.close()
    # PeerMachine: accepted, the check runs when a peer connects (test-daemon covers machined)
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "pm", "--peer-machine", "foo")
    ok(r.returncode == 0 and e.vc("show", "-P", "PeerMachine", "vm1/pm").stdout == "\n",
       "attach --peer-machine foo: attached, PeerMachine empty until a peer connects", show(r))
    ok(e.vc("detach", "vm1/pm").returncode == 0, "detach vm1/pm")
    # BindToCaller: videoctl exits right after attaching, so the device goes with it
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "bound", "--bind-to-caller")
    ok(r.returncode == 0 and poll_until(lambda: e.vc("show", "vm1/bound").returncode == 1, "vm1/bound gone")
       is not None, "attach --bind-to-caller: the device is detached when videoctl leaves the bus", show(r))
    r = e.vc("attach", "--backend", "null")
    ok(is_failure(r, "Failed to attach device: ") and "--vm" in r.stderr, "attach without --vm: exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1")
    ok(is_failure(r, "Failed to attach device to vm1: "), "attach without --device or --backend: exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--uuid", "not-a-uuid")
    ok(is_failure(r, "Failed to attach null to vm1: ") and "uuid" in r.stderr, "attach with a bad --uuid: exit 1",
       show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--replace", "--if-missing")
    ok(r.returncode == 1 and r.stdout == "" and "cannot be combined" in r.stderr,
       "attach --replace --if-missing: refused, exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--alias", "m600", "--socket-mode", "0600",
             "--allow-uid", f"{os.geteuid()},4242")
    sock = os.path.join(e.rt, "vm/vm1/m600.sock")
    ok(r.returncode == 0 and r.stdout == sock + "\n" and os.path.exists(sock)
       and (os.stat(sock).st_mode & 0o777) == 0o600 and e.vc("show", "-P", "SocketMode", "vm1/m600").stdout == "384\n",
       "attach --socket-mode 0600 --allow-uid: the socket has mode 0600", show(r))
    ok(e.vc("detach", "vm1/m600").returncode == 0, "detach vm1/m600")
    ok(e.vc("show", "-P", "NDevices").stdout == "3\n", "no failed attach left a device behind",
       e.vc("list").stdout)

    # a second VM, with a UUID
    r = e.vc("attach", "--vm", "vm2", "--backend", "null", "--uuid", "0123456789ab-cdef-0123-4567-89abcdef0123")
    ok(r.returncode == 1, "attach --uuid with misplaced dashes is refused", show(r))
    r = e.vc("attach", "--vm", "vm2", "--backend", "null", "--uuid", "01234567-89ab-cdef-0123-456789abcdef")
    ok(r.returncode == 0 and e.vc("show", "-P", "VMUUID", "vm2/video0").stdout == "0123456789abcdef0123456789abcdef\n",
       "attach --uuid: VMUUID carries the 16 bytes", show(r))


def test_polkit(e):
    """As a normal user, mutating calls go through polkit (as root they never do: the privilege shortcut)."""
    asked = e.polkit_queries()
    if os.geteuid() == 0:
        ok(asked == [], "as root, polkit is never asked", asked)
        return
    ok("org.virtiovideo.video1.attach-device" in asked, "as a normal user, attach was authorized by polkit", asked)
    e.start_polkit("no")
    try:
        r = e.vc("attach", "--vm", "vm9", "--backend", "null", "--no-ask-password")
        ok(is_failure(r, "Failed to attach null to vm9: ") and "ccess denied" in r.stderr,
           "attach refused by polkit: 'Failed to attach ...: Access denied ...', exit 1", show(r))
        # the owner of a device may detach it without polkit (management-plane.md §6.5)
        r = e.vc("detach", "vm2/video0")
        ok(r.returncode == 0 and e.vc("show", "vm2/video0").returncode == 1,
           "the owner detaches without asking polkit", show(r))
        ok(e.polkit_queries().count("org.virtiovideo.video1.detach-device") == 0, "polkit was not asked to detach",
           e.polkit_queries())
    finally:
        e.start_polkit("yes")
    r = e.vc("attach", "--vm", "vm2", "--backend", "null", "--uuid", "01234567-89ab-cdef-0123-456789abcdef")
    ok(r.returncode == 0, "attach again once polkit says yes", show(r))


def test_list_status_show(e):
    r = e.vc("list")
    header, rows, footer = table_rows(r.stdout)
    ok(r.returncode == 0 and [row[:2] for row in rows] == [["vm1", "dec1"], ["vm1", "enc"], ["vm1", "video0"],
                                                           ["vm2", "video0"]]
       and footer == "4 devices listed.", "list: rows sorted by VM and alias, footer 'N devices listed.'", show(r))
    want = {"dec1": ["vm1", "dec1", "-", "decoder", "listening", os.path.join(e.rt, "vm/vm1/dec1.sock")],
            "enc": ["vm1", "enc", "-", "encoder", "listening", os.path.join(e.rt, "vm/vm1/enc.sock")]}
    ok(all(row in rows for row in want.values()), "list: host device, role, state and socket columns", r.stdout)
    r = e.vc("list", "--no-legend")
    ok(r.returncode == 0 and len(r.stdout.splitlines()) == 4 and r.stdout.split()[0] == "vm1"
       and "devices listed" not in r.stdout, "list --no-legend: rows only", show(r))
    r = e.vc("list", "--json=short")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and isinstance(j, list) and len(j) == 4
       and all(set(x) == {"vm", "alias", "host_device", "role", "state", "socket"} for x in j)
       and {"vm": "vm1", "alias": "enc", "host_device": "-", "role": "encoder", "state": "listening",
            "socket": os.path.join(e.rt, "vm/vm1/enc.sock")} in j,
       "list --json=short: the table as objects with snake_case keys", show(r))
    r = e.vc("list", "--json=pretty", "--vm", "vm2")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and j is not None and [(x["vm"], x["alias"]) for x in j] == [("vm2", "video0")],
       "list --vm VM --json=pretty: only that VM", show(r))
    r = e.vc("list", "--vm", "vm3")
    ok(r.returncode == 0 and r.stdout.splitlines()[-1] == "No devices.", "list --vm of an unknown VM: No devices.",
       show(r))

    r = e.vc("status", "vm1/dec1")
    out = r.stdout
    ok(r.returncode == 0 and out.startswith("vm1/dec1\n") and "Backend: null" in out
       and "Role: decoder (virtio-video)" in out
       and f"Socket: {os.path.join(e.rt, 'vm/vm1/dec1.sock')} (mode 0660" in out and "State: listening" in out
       and "Streams: 0 active" in out, "status VM/ALIAS: the human block", show(r))
    r = e.vc("status")
    ok(r.returncode == 0 and all(f"{n}\n" in r.stdout for n in ("vm1/dec1", "vm1/enc", "vm1/video0", "vm2/video0")),
       "status without argument: every device", show(r))
    r = e.vc("status", "vm1/dec1", "vm1/nope")
    ok(r.returncode == 1 and "vm1/dec1\n" in r.stdout and
       r.stderr.strip() == "Failed to get status of vm1/nope: No device vm1/nope",
       "status with one unknown device: the others printed, exit 1, the error on stderr", show(r))

    r = e.vc("show", "vm1/dec1")
    p = dict(l.split("=", 1) for l in r.stdout.splitlines()) if r.returncode == 0 else {}
    ok(r.returncode == 0 and p.get("VM") == "vm1" and p.get("Alias") == "dec1" and p.get("State") == "listening"
       and p.get("SocketPath") == os.path.join(e.rt, "vm/vm1/dec1.sock") and p.get("Protocol") == "virtio-video"
       and p.get("Transport") == "server" and p.get("SocketMode") == str(0o660) and "HostDevice" not in p,
       "show VM/ALIAS: Key=Value, empty values left out", show(r))
    r = e.vc("show", "-a", "vm1/dec1")
    pa = dict(l.split("=", 1) for l in r.stdout.splitlines()) if r.returncode == 0 else {}
    ok(r.returncode == 0 and pa.get("HostDevice") == "" and set(p) < set(pa), "show -a: empty properties too",
       show(r))
    r = e.vc("show", "-p", "State", "-p", "Alias", "vm1/dec1")
    ok(r.returncode == 0 and sorted(r.stdout.splitlines()) == ["Alias=dec1", "State=listening"],
       "show -p NAME -p NAME VM/ALIAS", show(r))
    r = e.vc("show", "-P", "Role", "vm1/enc")
    ok(r.returncode == 0 and r.stdout == "encoder\n", "show -P NAME VM/ALIAS: value only", show(r))
    r = e.vc("show", "--value", "-p", "Alias", "vm1/dec1", "vm2/video0")
    ok(r.returncode == 0 and r.stdout == "dec1\nvideo0\n", "show --value with two devices", show(r))
    r = e.vc("show", "nope/x")
    ok(is_failure(r) and r.stderr.strip() == "Failed to show nope/x: No device nope/x",
       "show of an unknown device: 'Failed to show nope/x: No device nope/x', exit 1", show(r))
    r = e.vc("show", "vm1")
    ok(is_failure(r, "Failed to show vm1: "), "show with a name that is not VM/ALIAS: exit 1", show(r))


def parse_stats(e, name):
    r = e.vc("stats", name)
    lines = r.stdout.splitlines()
    if r.returncode != 0 or not lines or lines[0].split() != ["KEY", "VALUE"]:
        return None, r
    return {k: int(v) for k, v in (l.split() for l in lines[1:])}, r


def test_stats_qemu_args(e):
    s, r = parse_stats(e, "vm1/dec1")
    ok(s is not None and {"Connections", "Disconnects", "StreamsCreated", "ActiveStreams", "Errors", "BytesIn",
                          "BytesOut"} <= set(s) and all(v >= 0 for v in s.values()),
       "stats VM/ALIAS: table KEY VALUE of numbers", show(r))
    r = e.vc("stats", "--json=short", "vm1/dec1")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and isinstance(j, list) and all(set(x) == {"key", "value"} and isinstance(x["value"], int)
                                                         for x in j)
       and {x["key"]: x["value"] for x in j}.keys() == s.keys(),
       "stats --json: key/value objects with JSON numbers", show(r))
    r = e.vc("stats", "--no-legend", "vm1/dec1")
    ok(r.returncode == 0 and len(r.stdout.splitlines()) == len(s) and "KEY" not in r.stdout,
       "stats --no-legend: no header", show(r))
    r = e.vc("stats", "nope/x")
    ok(is_failure(r) and r.stderr.strip() == "Failed to get statistics of nope/x: No device nope/x",
       "stats of an unknown device: exit 1", show(r))

    sock = os.path.join(e.rt, "vm/vm1/dec1.sock")
    r = e.vc("qemu-args", "vm1/dec1")
    ok(r.returncode == 0 and r.stdout == f"-chardev socket,id=vvid0,path={sock} -device vhost-user-test-device-pci,"
       "chardev=vvid0,virtio-id=31,num_vqs=2,vq_size=256,config_size=44\n" and "memfd" in r.stderr,
       "qemu-args (cmdline): -chardev with the socket, -device with virtio-id 31 for a decoder", show(r))
    r = e.vc("qemu-args", "-q", "--id", "vv1", "--reconnect-ms", "500", "vm1/enc")
    ok(r.returncode == 0 and f"-chardev socket,id=vv1,path={os.path.join(e.rt, 'vm/vm1/enc.sock')},reconnect-ms=500 "
       in r.stdout and "chardev=vv1,virtio-id=30," in r.stdout and r.stderr == "",
       "qemu-args --id --reconnect-ms -q: an encoder has virtio-id 30", show(r))
    r = e.vc("qemu-args", "--format", "libvirt", "vm1/dec1")
    args = None
    try:
        root = ET.fromstring("<r xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>" + r.stdout + "</r>")
        ns = "{http://libvirt.org/schemas/domain/qemu/1.0}"
        cl = root.findall(f"{ns}commandline")
        args = [a.get("value") for a in cl[0].findall(f"{ns}arg")] if len(cl) == 1 else None
    except ET.ParseError as ex:
        diag(f"XML: {ex}")
    ok(r.returncode == 0 and args is not None and len(args) == 4 and args[0] == "-chardev"
       and args[1] == f"socket,id=vvid0,path={sock}" and args[2] == "-device" and "virtio-id=31" in args[3]
       and "memfd" in r.stdout, "qemu-args --format libvirt: a <qemu:commandline> fragment with the socket", show(r))
    r = e.vc("qemu-args", "--format", "libvirt", "--frontend", "dev'<&>\"x", "vm1/dec1")
    try:
        root = ET.fromstring("<r xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>" + r.stdout + "</r>")
        args = [a.get("value") for a in root.iter("{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    except ET.ParseError as ex:
        args = [str(ex)]
    ok(r.returncode == 0 and len(args) == 4 and args[3].startswith("dev'<&>\"x,chardev=vvid0,"),
       "qemu-args --format libvirt: values are XML-escaped", show(r))
    r = e.vc("qemu-args", "--format", "xml", "vm1/dec1")
    ok(is_failure(r, "Failed to build QEMU arguments: "), "qemu-args --format of an unknown format: exit 1", show(r))
    r = e.vc("qemu-args", "--id", "a,b", "vm1/dec1")
    ok(is_failure(r, "Failed to build QEMU arguments for vm1/dec1: "), "qemu-args with a bad --id: exit 1", show(r))
    r = e.vc("qemu-args", "--reconnect-ms", "-5", "vm1/dec1")
    ok(is_failure(r, "Failed to build QEMU arguments for vm1/dec1: "), "qemu-args with a bad --reconnect-ms: exit 1",
       show(r))
    r = e.vc("qemu-args", "vm1/nope")
    ok(is_failure(r, "Failed to build QEMU arguments for vm1/nope: "), "qemu-args of an unknown device: exit 1",
       show(r))


def test_probe(e):
    before, _ = parse_stats(e, "vm1/dec1")
    r = e.vc("probe", "vm1/dec1")
    m = re.search(r"Decode: ok, (\d+) frames of (\d+)x(\d+)", r.stdout)
    ok(r.returncode == 0 and "Device: virtio-video decoder, backend 'null'" in r.stdout
       and "Input formats:" in r.stdout and "FWHT" in r.stdout and "Output formats:" in r.stdout
       and "NV12" in r.stdout and m and int(m.group(1)) > 0,
       "probe VM/ALIAS: capabilities and a decode of N frames", show(r))
    r = e.vc("probe", "--json=short", "vm1/dec1")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and isinstance(j, dict) and j.get("role") == "decoder"
       and j.get("socket") == os.path.join(e.rt, "vm/vm1/dec1.sock")
       and any(f["format"] == "FWHT" for f in j.get("input_formats", []))
       and any(f["format"] == "NV12" for f in j.get("output_formats", []))
       and j.get("decode", {}).get("ok") is True and j["decode"].get("frames", 0) > 0,
       "probe --json: capabilities and the decode result", show(r))
    r = e.vc("probe", "vm1/enc")
    m = re.search(r"Encode: ok, (\d+) frames into (\d+) packets", r.stdout)
    ok(r.returncode == 0 and "Device: virtio-video encoder" in r.stdout and m and int(m.group(2)) > 0,
       "probe on an encoder: capabilities and an encode of generated pictures", show(r))
    r = e.vc("probe", "--json=short", "vm1/enc")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and isinstance(j, dict) and j.get("role") == "encoder"
       and j.get("encode", {}).get("ok") is True and j["encode"].get("packets", 0) > 0 and "decode" not in j,
       "probe --json on an encoder: the encode result", show(r))
    r = e.vc("probe", "vm1/nope")
    ok(is_failure(r) and r.stderr.strip() == "Failed to probe vm1/nope: No device vm1/nope",
       "probe of an unknown device: exit 1", show(r))
    after = poll_until(lambda: (lambda s: s if s and s["Connections"] >= before["Connections"] + 2 and
                                s["StreamsCreated"] >= before["StreamsCreated"] + 2 and s["BytesIn"] > 0 else None)(
        parse_stats(e, "vm1/dec1")[0]), "the probes to show in the counters")
    ok(after is not None, "stats count the probes' connections, streams and bytes", after)
    ok(poll_until(lambda: e.state("vm1/dec1") == "listening", "vm1/dec1 listening after the probes") is not None,
       "the device listens again after a probe")

    # A VM (a plain vhost-user connection) takes the device: probe must refuse, detach must ask for --force.
    vm = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    vm.connect(os.path.join(e.rt, "vm/vm1/dec1.sock"))
    try:
        ok(poll_until(lambda: e.state("vm1/dec1") == "connected", "vm1/dec1 connected") is not None,
           "a connected peer turns State to connected")
        p = e.props("vm1/dec1") or {}
        ok(p.get("PeerPID") == str(os.getpid()) and p.get("PeerUID") == str(os.geteuid()),
           "show: PeerPID and PeerUID of the connected peer", p)
        r = e.vc("status", "vm1/dec1")
        ok(r.returncode == 0 and "State: connected since " in r.stdout
           and f"Peer: pid {os.getpid()}, uid {os.geteuid()}" in r.stdout, "status: connected since, the peer",
           show(r))
        r = e.vc("probe", "vm1/dec1")
        ok(is_failure(r, "Failed to probe vm1/dec1: ") and "connected" in r.stderr,
           "probe refuses while a VM is connected, exit 1", show(r))
        r = e.vc("detach", "vm1/dec1")
        ok(is_failure(r, "Failed to detach vm1/dec1: ") and "FORCE" in r.stderr,
           "detach without --force while connected: DeviceConnected, exit 1", show(r))
        r = e.vc("detach", "--vm", "vm1", "--all")
        ok(is_failure(r, "Failed to detach devices of vm1: ") and e.vc("show", "-P", "NDevices").stdout == "4\n",
           "detach --vm --all without --force while one is connected: nothing detached, exit 1", show(r))
        r = e.vc("detach", "--force", "vm1/dec1")
        ok(r.returncode == 0 and r.stdout == "" and e.vc("show", "vm1/dec1").returncode == 1,
           "detach --force drops the connected VM", show(r))
        vm.settimeout(DEADLINE)
        try:
            hup = vm.recv(1) == b""
        except OSError:
            hup = True
        ok(hup, "the VM's connection is closed on a forced detach")
    finally:
        vm.close()


def test_monitor(e):
    for json_mode in (False, True):
        argv = [e.args.videoctl, "monitor"] + (["--json=short"] if json_mode else [])
        mon = subprocess.Popen(argv, env=e.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = LineReader(mon.stdout.fileno()), LineReader(mon.stderr.fileno())
        tag = " --json" if json_mode else ""
        try:
            line, _ = err.wait_for(lambda l: l.startswith("Monitoring org.virtiovideo.video1"))
            ok(line is not None, f"monitor{tag}: says on stderr when it listens")
            alias = "mj" if json_mode else "mt"
            obj = f"/org/virtiovideo/video1/device/vm3/{alias}"
            r = e.vc("attach", "--vm", "vm3", "--backend", "null", "--alias", alias)
            ok(r.returncode == 0, f"monitor{tag}: attach vm3/{alias}", show(r))
            parse = (lambda l: json.loads(l)) if json_mode else (lambda l: l)
            if json_mode:
                line, seen = out.wait_for(lambda l: json.loads(l).get("event") == "DeviceNew")
                ok(line is not None and json.loads(line) == {"event": "DeviceNew", "vm": "vm3", "alias": alias,
                                                             "object": obj},
                   "monitor --json: a DeviceNew object", (line, seen))
            else:
                line, seen = out.wait_for(lambda l: l.startswith("DeviceNew "))
                ok(line == f"DeviceNew vm3/{alias} {obj}", "monitor: a DeviceNew line", (line, seen))
            # a probe connects and disconnects: State changes are PropertiesChanged events
            r = e.vc("probe", f"vm3/{alias}")
            ok(r.returncode == 0, f"monitor{tag}: probe vm3/{alias}", show(r))
            if json_mode:
                want = {"event": "PropertiesChanged", "vm": "vm3", "alias": alias, "object": obj,
                        "State": "connected"}
                line, seen = out.wait_for(lambda l: json.loads(l) == want)
                ok(line is not None, "monitor --json: a PropertiesChanged object with State=connected", seen)
            else:
                line, seen = out.wait_for(lambda l: l == f"PropertiesChanged vm3/{alias} State=connected")
                ok(line is not None, "monitor: a PropertiesChanged line with State=connected", seen)
            r = e.vc("detach", f"vm3/{alias}")
            ok(r.returncode == 0, f"monitor{tag}: detach vm3/{alias}", show(r))
            if json_mode:
                line, seen = out.wait_for(lambda l: json.loads(l).get("event") == "DeviceRemoved")
                ok(line is not None and json.loads(line) == {"event": "DeviceRemoved", "vm": "vm3", "alias": alias,
                                                             "object": obj},
                   "monitor --json: a DeviceRemoved object", (line, seen))
                ok(all(isinstance(parse(l), dict) for l in seen), "monitor --json: every line is a JSON object",
                   seen)
            else:
                line, seen = out.wait_for(lambda l: l.startswith("DeviceRemoved "))
                ok(line == f"DeviceRemoved vm3/{alias} {obj}", "monitor: a DeviceRemoved line", (line, seen))
        finally:
            mon.send_signal(signal.SIGINT)
            try:
                rc = mon.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                mon.kill()
                rc = mon.wait()
            mon.stdout.close()
            mon.stderr.close()
        ok(rc == 0, f"monitor{tag}: exits 0 on SIGINT", rc)


def vc_tty(e, *argv):
    """videoctl with stdout on a pseudo-terminal; returns (exit status, what it printed there)."""
    import pty
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([e.args.videoctl, *argv], stdout=slave, stderr=subprocess.PIPE, env=e.env)
        os.close(slave)
        slave = -1
        out = LineReader(master)
        lines = []
        while True:
            line = out.next(DEADLINE)
            if line is None:
                break
            lines.append(line.rstrip("\r"))
        rc = p.wait(DEADLINE)
        p.stderr.close()
        return rc, lines
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


def test_tty(e):
    for alias in ("t1", "t2"):
        e.vc("attach", "--vm", "vmt", "--backend", "null", "--alias", alias)
    r = e.vc("list", "-j", "--vm", "vmt")
    ok(r.returncode == 0 and len(r.stdout.splitlines()) == 1 and len(json.loads(r.stdout)) == 2,
       "-j off a terminal: short JSON", show(r))
    rc, lines = vc_tty(e, "list", "-j", "--vm", "vmt")
    ok(rc == 0 and len(lines) > 2 and len(json.loads("\n".join(lines))) == 2, "-j on a terminal: pretty JSON",
       (rc, lines))
    rc, lines = vc_tty(e, "detach", "--vm", "vmt", "--all")
    ok(rc == 0 and lines == ["2 devices detached."], "detach --vm --all on a terminal: the count", (rc, lines))


def test_detach_and_errors(e):
    r = e.vc("detach", "vm1/nope")
    ok(is_failure(r) and r.stderr.strip() == "Failed to detach vm1/nope: No device vm1/nope",
       "detach of an unknown device: exit 1", show(r))
    r = e.vc("detach", "vm1")
    ok(is_failure(r, "Failed to detach vm1: "), "detach with a name that is not VM/ALIAS: exit 1", show(r))
    r = e.vc("detach")
    ok(is_failure(r, "Failed to detach devices: "), "detach without a device: exit 1", show(r))
    r = e.vc("detach", "vm1/enc", "vm2/video0")
    ok(r.returncode == 0 and r.stdout == "" and e.vc("list", "--no-legend").stdout.split()[:2] == ["vm1", "video0"],
       "detach VM/ALIAS VM/ALIAS: both gone", show(r))
    r = e.vc("detach", "--vm", "vm1", "--all", "--json=short")
    ok(r.returncode == 0 and json.loads(r.stdout) == {"vm": "vm1", "detached": 1},
       "detach --vm VM --all --json: the count", show(r))
    r = e.vc("detach", "--vm", "vm1", "--all")
    ok(r.returncode == 0 and r.stdout == "", "detach --vm VM --all again: exit 0", show(r))
    ok(e.vc("list").stdout.splitlines()[-1] == "No devices.", "everything is detached")

    r = e.vc("frobnicate")
    ok(r.returncode == 1 and r.stdout == "" and "Unknown command verb 'frobnicate'" in r.stderr,
       "an unknown verb: exit 1", show(r))
    r = e.vc("--bogus", "list")
    ok(r.returncode == 1 and r.stdout == "" and "bogus" in r.stderr, "an unknown option: exit 1", show(r))
    r = e.vc("list", "--json=bogus")
    ok(r.returncode == 1 and r.stdout == "" and "bogus" in r.stderr, "--json= with an unknown mode: exit 1", show(r))
    r = e.vc("stats")
    ok(r.returncode == 1 and "Too few arguments" in r.stderr, "stats without a device: exit 1", show(r))
    r = e.vc("list", "extra")
    ok(r.returncode == 1 and "Too many arguments" in r.stderr, "list with an argument: exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--allow-uid", "x")
    ok(r.returncode == 1 and r.stdout == "" and "--allow-uid" in r.stderr, "attach --allow-uid x: exit 1", show(r))
    r = e.vc("attach", "--vm", "vm1", "--backend", "null", "--socket-mode", "999")
    ok(is_failure(r, "Failed to attach null to vm1: "), "attach --socket-mode 999: exit 1", show(r))
    r = e.vc("--json=help")
    ok(r.returncode == 0 and r.stdout.split() == ["short", "pretty", "off"], "--json=help lists the modes", show(r))
    r = e.vc("--help")
    ok(r.returncode == 0 and all(v in r.stdout for v in ("list", "status", "show", "attach", "detach",
                                                         "list-host-devices", "stats", "qemu-args", "probe",
                                                         "monitor")), "--help names every verb", show(r))
    r = e.vc("--version")
    ok(r.returncode == 0 and r.stdout.startswith("videoctl ") and
       r.stdout.split()[1] == e.vc("show", "-P", "Version").stdout.strip(), "--version matches the daemon's", show(r))


DOMAIN_XML = """<domain type='kvm'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <metadata>
    <vv:devices xmlns:vv="http://virtiovideo.org/xmlns/libvirt/1.0">
      <vv:device backend="null" alias="hv0"/>
      <vv:device backend='null' alias='hv1'
                 role='encoder'/>
    </vv:devices>
  </metadata>
  <memory unit='KiB'>1048576</memory>
</domain>
"""


def test_hook(e):
    env = dict(e.env)
    env["VIDEOCTL"] = e.args.videoctl
    uuid = "c7a5fdbd-cdaf-9455-926a-d65c16db1809"
    xml = DOMAIN_XML.format(name="dom 1", uuid=uuid)

    def hook(*argv, stdin=xml):
        return subprocess.run([e.args.hook, "dom 1", *argv], input=stdin, capture_output=True, text=True, env=env,
                              timeout=DEADLINE)

    r = hook("prepare", "begin", "-")
    j = json.loads(e.vc("list", "--json=short", "--vm", "dom 1").stdout)
    ok(r.returncode == 0 and [(x["alias"], x["role"]) for x in j] == [("hv0", "decoder"), ("hv1", "encoder")],
       "hook prepare begin: the domain's devices appear", show(r) + "\n" + json.dumps(j))
    ok(e.vc("show", "-P", "VMUUID", "dom 1/hv0").stdout == uuid.replace("-", "") + "\n",
       "hook: the domain's UUID is passed on")
    r = hook("prepare", "begin", "-")
    ok(r.returncode == 0 and len(json.loads(e.vc("list", "--json=short", "--vm", "dom 1").stdout)) == 2,
       "hook prepare begin again: idempotent", show(r))
    r = hook("reconnect", "begin", "-")
    ok(r.returncode == 0 and len(json.loads(e.vc("list", "--json=short", "--vm", "dom 1").stdout)) == 2,
       "hook reconnect begin: idempotent", show(r))
    r = hook("started", "begin", "-")
    ok(r.returncode == 0 and len(json.loads(e.vc("list", "--json=short", "--vm", "dom 1").stdout)) == 2,
       "hook: other operations do nothing", show(r))
    r = hook("release", "end", "-")
    ok(r.returncode == 0 and json.loads(e.vc("list", "--json=short", "--vm", "dom 1").stdout) == [],
       "hook release end: the devices disappear", show(r))
    r = hook("release", "end", "shutdown")
    ok(r.returncode == 0, "hook release end with nothing attached: exit 0", show(r))
    r = hook("prepare", "begin", "-", stdin=xml.replace("alias='hv1'", "alias='Bad!'"))
    ok(r.returncode != 0 and "virtio-video hook: Failed to attach null to dom 1: " in r.stderr,
       "hook prepare begin with a bad device: fails (libvirt aborts the start) and says why", show(r))
    hook("release", "end", "-")
    ok(json.loads(e.vc("list", "--json=short").stdout) == [], "hook: nothing left behind")


def complete(e, line):
    """Runs _videoctl in bash as readline would for line; returns the sorted COMPREPLY."""
    env = dict(e.env)
    env["PATH"] = os.path.dirname(e.args.videoctl) + ":" + env.get("PATH", "/usr/bin:/bin")
    # as readline splits: on spaces, and '=' (in COMP_WORDBREAKS) is a word of its own
    words = [w for w in re.split(r"(=)| ", line) if w is not None]
    words = [w for i, w in enumerate(words) if w != "" or i == len(words) - 1]
    script = ("source /usr/share/bash-completion/bash_completion\n"
              f"source {sh_quote(e.args.completion)}\n"
              f"COMP_WORDS=({' '.join(sh_quote(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\n"
              f"COMP_LINE={sh_quote(line)}\n"
              "COMP_POINT=${#COMP_LINE}\n"
              "_videoctl videoctl \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, env=env,
                       timeout=DEADLINE)
    return sorted(x for x in r.stdout.splitlines() if x), r


def test_completion(e):
    def complete_line(line):
        return complete(e, line)

    for vm, alias in (("vmc", "video0"), ("vmc", "dec9"), ("vmd", "video0")):
        e.vc("attach", "--vm", vm, "--backend", "null", "--alias", alias)
    got, r = complete_line("videoctl st")
    ok(got == ["stats", "status"], "completion: verbs", show(r))
    got, r = complete_line("videoctl ")
    ok(got == sorted("list status show attach detach list-host-devices stats qemu-args probe monitor".split()),
       "completion: every verb on an empty word", show(r))
    got, r = complete_line("videoctl status vmc/")
    ok(got == ["vmc/dec9", "vmc/video0"], "completion: device names VM/ALIAS from videoctl list", show(r))
    got, r = complete_line("videoctl --no-legend detach ")
    ok(got == ["vmc/dec9", "vmc/video0", "vmd/video0"], "completion: device names after options", show(r))
    got, r = complete_line("videoctl attach --vm v")
    ok(got == ["vmc", "vmd"], "completion: --vm from the VM column", show(r))
    got, r = complete_line("videoctl attach --backend n")
    ok(got == ["null"], "completion: --backend values", show(r))
    got, r = complete_line("videoctl list --json=p")
    ok(got == ["pretty"], "completion: --json=MODE", show(r))
    got, r = complete_line("videoctl list --no-l")
    ok(got == ["--no-legend"], "completion: options", show(r))
    e.vc("detach", "--vm", "vmc", "--all")
    e.vc("detach", "--vm", "vmd", "--all")


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def test_host_devices(e):
    """The daemon with its host probe reading descriptions from files (tests/fakes/fake-probe.c)."""
    def node(name, text):
        with open(os.path.join(e.devdir, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(e.devdir, name), 0o666)

    node("video10", "[V4L2]\nDriver=vicodec\nCard=vicodec-dec\nM2M=true\nRoles=decoder\n")
    node("video11", "[V4L2]\nDriver=vicodec\nCard=vicodec-both\nM2M=true\nRoles=decoder;encoder\n")
    node("video12", "[V4L2]\nDriver=uvcvideo\nCard=webcam\nM2M=false\nRoles=\n")
    r = e.vc("list-host-devices")
    header, rows, footer = table_rows(r.stdout)
    d10, d11 = os.path.join(e.devdir, "video10"), os.path.join(e.devdir, "video11")
    ok(r.returncode == 0 and rows == [[d10, "vicodec", "vicodec-dec", "decoder", "0"],
                                      [d11, "vicodec", "vicodec-both", "decoder,encoder", "0"]]
       and footer == "2 host devices listed.", "list-host-devices: the M2M codec nodes, sorted", show(r))
    r = e.vc("attach", "--vm", "hv", "--device", d10)
    ok(r.returncode == 0 and r.stdout == os.path.join(e.rt, "vm/hv/video0.sock") + "\n",
       "attach --device NODE: the socket path", show(r))
    r = e.vc("list-host-devices", "--json=short")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    ok(r.returncode == 0 and j == [{"device": d10, "driver": "vicodec", "card": "vicodec-dec", "roles": "decoder",
                                    "attached": 1},
                                   {"device": d11, "driver": "vicodec", "card": "vicodec-both",
                                    "roles": "decoder,encoder", "attached": 0}],
       "list-host-devices --json: objects, ATTACHED a number that counts the attachment", show(r))
    got, r = complete(e, f"videoctl attach --device {e.devdir}/video1")
    ok(got == [d10, d11], "completion: --device from videoctl list-host-devices", show(r))
    r = e.vc("list-host-devices", "--no-legend")
    ok(r.returncode == 0 and len(r.stdout.splitlines()) == 2 and r.stdout.startswith(d10),
       "list-host-devices --no-legend: rows only", show(r))
    r = e.vc("list", "--no-legend")
    ok(r.returncode == 0 and r.stdout.split()[:3] == ["hv", "video0", d10], "list: the HOST-DEVICE column", show(r))
    r = e.vc("status", "hv/video0")
    ok(r.returncode == 0 and f"Host device: {d10} (vicodec, vicodec-dec)" in r.stdout,
       "status: host device with driver and card", show(r))
    r = e.vc("attach", "--vm", "hv", "--device", os.path.join(e.devdir, "video12"))
    ok(is_failure(r, f"Failed to attach {e.devdir}/video12 to hv: ") and "memory-to-memory" in r.stderr,
       "attach a node that is no codec: NotACodec, exit 1",
       show(r))
    r = e.vc("attach", "--vm", "hv", "--device", d10, "--role", "encoder", "--alias", "e1")
    ok(is_failure(r, f"Failed to attach {d10} to hv: ") and "is no encoder" in r.stderr,
       "attach a decoder node as encoder: NotACodec, exit 1",
       show(r))
    r = e.vc("attach", "--vm", "hv2", "--device", d10, "--exclusive")
    ok(is_failure(r, f"Failed to attach {d10} to hv2: ") and "is used by hv/video0" in r.stderr,
       "attach --exclusive of a node in use: HostDeviceBusy, exit 1",
       show(r))
    r = e.vc("detach", "--force", "--vm", "hv", "--all")
    ok(r.returncode == 0 and json.loads(e.vc("list", "--json=short").stdout) == [],
       "detach --force --vm --all", show(r))


def main():
    ap = argparse.ArgumentParser()
    for a in ("videoctl", "daemon", "fakeprobe-daemon", "worker", "fake-polkit", "hook", "completion"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--make-stream", default=None)
    args = ap.parse_args()

    help_text = subprocess.run([args.worker, "--help"], capture_output=True, text=True).stdout
    m = re.search(r"--backend=NAME\s+codec backend: (.*)", help_text)
    worker_backends = [b.strip() for b in m.group(1).split(",")] if m else []

    e = Env(args)
    try:
        e.start_bus()
        diag(f"bus {e.address}, {'root' if os.geteuid() == 0 else 'uid %d with a fake polkit' % os.geteuid()}")
        ok(e.start_daemon(args.daemon, "rt") is not None, "virtio-videod is on the private bus")
        if e.daemon is None or e.daemon.poll() is not None:
            raise RuntimeError("the daemon did not start:\n" + e.daemon_log_text())
        test_empty(e)
        test_attach(e, worker_backends)
        test_polkit(e)
        test_list_status_show(e)
        test_stats_qemu_args(e)
        test_probe(e)
        test_monitor(e)
        test_tty(e)
        test_detach_and_errors(e)
        test_hook(e)
        test_completion(e)
        rc = e.stop_daemon()
        ok(rc == 0, "virtio-videod exits 0 on SIGTERM", f"status {rc}\n" + e.daemon_log_text()[-6000:])
        r = e.vc("list")
        ok(is_failure(r, "Failed to list devices: "), "list without the daemon: exit 1 with the reason", show(r))

        ok(e.start_daemon(args.fakeprobe_daemon, "rt2") is not None, "virtio-videod (fake host probe) is on the bus")
        test_host_devices(e)
        rc = e.stop_daemon()
        ok(rc == 0, "virtio-videod (fake host probe) exits 0 on SIGTERM", f"status {rc}\n" + e.daemon_log_text()[-6000:])
    except Exception as ex:  # report, do not hide: a crash in the driver is a failure
        ok(False, f"test driver: {type(ex).__name__}: {ex}")
        if e.daemon_log if hasattr(e, "daemon_log") else None:
            diag(e.daemon_log_text())
    finally:
        if TAP["failed"] and hasattr(e, "daemon_log"):
            diag("daemon log:\n" + e.daemon_log_text()[-4000:])
        e.cleanup()
    print(f"1..{TAP['n']}", flush=True)
    return 1 if TAP["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
