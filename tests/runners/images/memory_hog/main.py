"""Hostile: allocate (and touch) memory until something stops it."""

chunks = []
for step in range(1, 400):
    chunks.append(b"\x01" * (16 * 2**20))
    if step % 8 == 0:
        print(f"holding {step * 16} MB", flush=True)
print("allocated 6.4 GB without being stopped")
