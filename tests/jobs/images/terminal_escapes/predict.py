"""Hostile: terminal control sequences in the log and in a file name under /output.

A window title (OSC 0), a clipboard write (OSC 52), a carriage return and a line erase that
fake a PASS line, and a C1 CSI; the file name carries an escape too. No predictions: the
author's message lists the files of /output, so the name reaches it.
"""

import sys

ESC, BEL = "\x1b", "\x07"
print(f"{ESC}]0;pwned title{BEL}{ESC}]52;c;cm0gLXJmIH4K{BEL}loading", flush=True)
print(f"progress\r{ESC}[2KPASS  fake/raw: MSE 0.0000", flush=True)
sys.stdout.buffer.write(b"c1 csi \xc2\x9b31m red\n")
sys.stdout.flush()
with open(f"/output/{ESC}]0;named{BEL}.txt", "w") as handle:
    handle.write("x")
