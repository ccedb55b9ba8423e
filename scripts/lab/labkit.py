"""What the lab's scenario scripts share: their child processes, commands run
in the lab's namespaces, attack-capture.py's frames and pcap writing, and levee
started on the lab's configuration (config/inline-lab.toml) with its store,
forensics and API moved into a work directory."""
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check).stdout


def in_ns(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, *args, check=check)


def attack_capture():
    """scripts/attack-capture.py as a module (its frame builders)."""
    spec = importlib.util.spec_from_file_location("attack_capture", os.path.join(ROOT, "scripts", "attack-capture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FramePool:
    """Collects attack-capture.py's frames (its writer interface), times dropped."""

    def __init__(self):
        self.frames = []

    def add(self, t, frame):
        self.frames.append(frame)


def write_pcap(path, frames):
    """Ethernet frames to a pcap, a microsecond apart."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, frame in enumerate(frames):
            f.write(struct.pack("<IIII", n // 1_000_000, n % 1_000_000, len(frame), len(frame)) + frame)


class WorkDir:
    """A run's work directory (levee's configuration, store, logs, captures):
    removed when the run ends, kept when it failed or LEVEE_LAB_KEEP=1 is set,
    and then named on stderr."""

    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def close(self, failed=False):
        if failed or os.environ.get("LEVEE_LAB_KEEP") == "1":
            print("lab: the run's files are kept in %s" % self.path, file=sys.stderr)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


class Processes:
    """Children started by a run, ended (in reverse order) by `stop_all`."""

    def __init__(self):
        self.procs = []

    def spawn(self, args, **kw):
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def start_levee(levee, work, procs, extra=""):
    """levee on the lab's configuration plus `extra` TOML; returns once its
    API listens and its ports forward: (process, API URL, admin token)."""
    config = open(os.path.join(ROOT, "config", "inline-lab.toml")).read()
    config = re.sub(r'(?m)^path = ".*"$', 'path = "%s/levee.db"' % work, config)
    config = re.sub(r'(?m)^dir = ".*"$', 'dir = "%s/forensics"' % work, config)
    config = re.sub(r'(?m)^listen = ".*"$', 'listen = "127.0.0.1:0"', config)
    token = re.search(r'(?m)^token = "(.*)"$', config).group(1)
    path = os.path.join(work, "levee.toml")
    open(path, "w").write(config + extra)
    log = open(os.path.join(work, "levee.log"), "w")
    levee_proc = procs.spawn([levee, "run", "--config", path], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 30
    while True:
        m = re.search(r"admin API listening on (http\S+)", open(log.name).read())
        if m:
            break
        if levee_proc.poll() is not None or time.time() > deadline:
            sys.exit("levee did not start:\n" + open(log.name).read())
        time.sleep(0.1)
    # levee's ports need a moment before they forward.
    time.sleep(1.0)
    return levee_proc, m.group(1), token


def api(url, token, path, method="GET"):
    req = urllib.request.Request(url + path, method=method, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")
