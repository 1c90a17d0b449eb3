"""Run one PHP file through a PHP-FPM pool's socket, as nginx would, and print what the
script wrote (its FastCGI stdout without the headers); stderr records go to stderr.

    python3 fastcgi.py /run/php/pool.sock /path/to/script.php

Used by the webmail checks to run code as Roundcube's workers run it: the stand-in for
code an attacker got into the webmail."""
import socket
import struct
import sys

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
RESPONDER = 1


def record(kind, content, request_id=1):
    return struct.pack("!BBHHBx", 1, kind, request_id, len(content), 0) + content


def length(value):
    return struct.pack("!B", value) if value < 128 else struct.pack("!I", value | 0x80000000)


def params(pairs):
    body = b"".join(length(len(k)) + length(len(v)) + k + v
                    for k, v in ((k.encode(), v.encode()) for k, v in pairs.items()))
    return record(PARAMS, body) + record(PARAMS, b"")


def main():
    sock_path, script = sys.argv[1], sys.argv[2]
    request = (record(BEGIN_REQUEST, struct.pack("!HB5x", RESPONDER, 0))
               + params({"SCRIPT_FILENAME": script, "SCRIPT_NAME": "/" + script.rsplit("/", 1)[-1],
                         "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
                         "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "localhost", "QUERY_STRING": ""})
               + record(STDIN, b""))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(sock_path)
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    out, err = b"", b""
    while len(data) >= 8:
        _, kind, _, size, padding = struct.unpack("!BBHHBx", data[:8])
        content, data = data[8:8 + size], data[8 + size + padding:]
        if kind == STDOUT:
            out += content
        elif kind == STDERR:
            err += content
        elif kind == END_REQUEST:
            break
    sys.stderr.write(err.decode(errors="replace"))
    sys.stdout.write(out.split(b"\r\n\r\n", 1)[-1].decode(errors="replace"))


if __name__ == "__main__":
    main()
