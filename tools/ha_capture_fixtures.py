#!/usr/bin/env python3
"""Captures real TCP frames for native/src/ha/packet_fixtures.zig.

Why: the packet parser and the checksum code must agree with what the Linux
stack puts on the wire, not only with our own idea of it. Run as root:

    python3 tools/ha_capture_fixtures.py

It makes two namespaces (rlfx-a, rlfx-b) joined by a veth pair, turns TX
checksum offload off (else captured frames carry partial checksums), opens a
connection a -> b, sends a short message, captures every frame on b with an
AF_PACKET socket, prints them as Zig arrays, and removes the namespaces.
packet_fixtures.zig keeps frames 0 (SYN), 1 (SYN-ACK), 3 (data) and 7 (FIN);
its two SACK frames were built by hand from frame 4.
"""
import ctypes, fcntl, socket, struct, subprocess, sys, threading, time

A, B = "rlfx-a", "rlfx-b"
SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17


def sh(*args):
    subprocess.run(args, check=True)


def tx_checksum_off(iface):
    # SIOCETHTOOL with struct ethtool_value {cmd, data}: what `ethtool -K IF tx off` does.
    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0), 8)
    ifreq = struct.pack("16sP", iface.encode(), ctypes.addressof(value))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)


def inner():
    # Runs inside rlfx-b.
    tx_checksum_off("eth0")
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    cap.bind(("eth0", 0))
    cap.settimeout(0.5)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("10.78.0.2", 7000))
    srv.listen()

    def serve():
        c, _ = srv.accept()
        data = c.recv(100)
        c.sendall(data)
        time.sleep(0.2)
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    client = subprocess.Popen(["ip", "netns", "exec", A, sys.executable, "-c", (
        "import socket,time;s=socket.create_connection(('10.78.0.2',7000));"
        "s.sendall(b'hello reliab\\n');s.recv(100);time.sleep(0.1);s.close()")])
    frames = []
    end = time.time() + 2
    while time.time() < end:
        try:
            frame, addr = cap.recvfrom(65535)
        except socket.timeout:
            continue
        if len(frame) > 34 and frame[12:14] == b"\x08\x00" and frame[23] == 6:
            frames.append((addr[2], frame))
    client.wait()
    for i, (kind, frame) in enumerate(frames):
        direction = "to b" if kind == 0 else "from b"
        print(f"// frame {i}, {direction}, {len(frame)} bytes")
        print(f"pub const frame_{i} = [_]u8{{")
        for at in range(0, len(frame), 16):
            print("    " + ", ".join(f"0x{b:02x}" for b in frame[at:at + 16]) + ",")
        print("};")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        inner()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--tx-off":
        tx_checksum_off("eth0")
        return
    subprocess.run(["ip", "netns", "del", A], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "netns", "del", B], stderr=subprocess.DEVNULL)
    try:
        sh("ip", "netns", "add", A)
        sh("ip", "netns", "add", B)
        sh("ip", "-n", A, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", B)
        sh("ip", "-n", A, "addr", "add", "10.78.0.1/24", "dev", "eth0")
        sh("ip", "-n", B, "addr", "add", "10.78.0.2/24", "dev", "eth0")
        for ns in (A, B):
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", A, sys.executable, __file__, "--tx-off")
        sh("ip", "netns", "exec", B, sys.executable, __file__, "--inner")
    finally:
        subprocess.run(["ip", "netns", "del", A])
        subprocess.run(["ip", "netns", "del", B])


if __name__ == "__main__":
    main()
