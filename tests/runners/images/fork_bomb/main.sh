#!/bin/sh
# Hostile: the classic fork bomb. The pids limit must hold it; PID 1 carries on and exits 7.
bomb() { bomb | bomb & }
bomb
sleep 4 || true
echo "fork bomb parent still alive"
exit 7
