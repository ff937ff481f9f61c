"""The Python side of examples/listener_server.c: a multiprocessing.connection Client talking to a C
Listener. Needs Python 3.12 or later (the handshake mproc speaks; 3.11's HMAC-MD5 one is refused).

    python3 listener_python.py ADDRESS       # the authkey, in hex, on the first line of stdin

The key comes on stdin, not on the command line, where other users could read it (ps).
"""
import sys
from multiprocessing.connection import Client

address = sys.argv[1]
host, port = address.rsplit(":", 1)
key = bytes.fromhex(sys.stdin.readline().strip())

with Client((host, int(port)), authkey=key) as conn:  # proves the key, and has the server prove it
    for word in (b"hello", b"from", b"python"):
        conn.send_bytes(word)
        print("python got:", conn.recv_bytes().decode())
    conn.send_bytes(b"")  # done
