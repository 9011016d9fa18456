"""Hostile: never finish."""

import time

print("going to sleep", flush=True)
time.sleep(3600)
