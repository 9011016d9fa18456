"""Hostile: a very deep folder tree under /output (a recursive delete would crash on it)."""

import os

import numpy as np

np.save("/output/predictions.npy", np.zeros((4, 3), dtype=np.float32))
depth = int(os.environ.get("DEPTH", "3000"))
os.chdir("/output")
for _ in range(depth):
    os.mkdir("d")
    os.chdir("d")
with open("leaf", "w") as leaf:
    leaf.write("deep")
print(f"made a tree {depth} deep", flush=True)
