"""Hostile: try to reach the network (TCP to public and private addresses, DNS)."""

import os
import socket
import sys

import numpy as np

reached = []
for host, port in [("1.1.1.1", 53), ("8.8.8.8", 443), ("172.17.0.1", 2375), ("10.0.0.1", 80)]:
    try:
        socket.create_connection((host, port), timeout=2).close()
        reached.append(f"{host}:{port}")
        print(f"connect {host}:{port}: CONNECTED")
    except OSError as error:
        print(f"connect {host}:{port}: failed ({type(error).__name__}: {error})")
try:
    print("dns pypi.org:", socket.getaddrinfo("pypi.org", 443)[0][4])
    reached.append("dns")
except OSError as error:
    print(f"dns pypi.org: failed ({type(error).__name__})")
print("interfaces:", sorted(os.listdir("/sys/class/net")))
if reached:
    print("REACHED", reached)
    sys.exit(1)
np.save("/output/predictions.npy", np.zeros((2, 3), dtype=np.float32))
