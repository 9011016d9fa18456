"""Hostile: the image says USER root; find out who we really are and try to escalate."""

import os
from pathlib import Path

import numpy as np

print(f"uid={os.getuid()} euid={os.geteuid()} gid={os.getgid()}")
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith(("CapEff", "CapPrm", "CapBnd", "NoNewPrivs")):
            print(line.strip().replace("\t", " "))
attempts = {
    "setuid(0)": lambda: os.setuid(0),
    "read /etc/shadow": lambda: Path("/etc/shadow").read_text(),
    "chown /output to root": lambda: os.chown("/output", 0, 0),
    "mknod": lambda: os.mknod("/tmp/disk", 0o600 | 0o060000, os.makedev(8, 0)),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print(f"{name}: SUCCEEDED")
    except OSError as error:
        print(f"{name}: {type(error).__name__}")
np.save("/output/predictions.npy", np.zeros((2, 3), dtype=np.float32))
