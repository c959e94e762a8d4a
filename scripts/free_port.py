#!/usr/bin/env python3
"""Print free loopback ports for tierguard's listeners, one per line.

Usage: free_port.py [COUNT]   (default 1; the ports printed are distinct)

The ports come from 10000-19999, below the kernel's ephemeral range. A port
the kernel hands out for ":0" lies in that range, where the API server's and
etcd's own outgoing connections take their local ports too, so between
choosing it and tierguard binding it a client socket can take it and the
bind fails with "Address already in use".
"""
import random
import socket
import sys

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
found = []
for port in random.sample(range(10000, 20000), 10000):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    found.append(port)
    if len(found) == count:
        break
if len(found) < count:
    sys.exit(f"free_port.py: only {len(found)} of {count} free ports in 10000-19999")
print("\n".join(map(str, found)))
