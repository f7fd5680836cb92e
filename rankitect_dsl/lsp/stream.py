"""The server's input stream, guarded: a message the client declares larger than any document could be, or
whose body is not JSON, is refused in one logged line and the server goes on with the next message. pygls
would otherwise allocate the declared length (a `MemoryError` at `Content-Length: 99999999999`) or log a
traceback."""

from __future__ import annotations

import json
import logging
import re

MAX_MESSAGE_BYTES = 16 << 20  # a 1 MiB document (core/limits.py) with every character escaped, and room to spare
IGNORED = "$/rks/ignored"  # the notification a refused body becomes: the server's no-op handler takes it
IGNORED_BODY = json.dumps({"jsonrpc": "2.0", "method": IGNORED, "params": {}}).encode()
HEADER = re.compile(rb"Content-Length: (\d+)\r\n")
log = logging.getLogger("rks.lsp")


class GuardedInput:
    """`readline` and `read` of a binary stream, as pygls's reader calls them."""

    def __init__(self, stream):
        self.stream = stream
        self.resync = False  # after a refused header: skip to the next `Content-Length:` header

    def readline(self) -> bytes:
        line = self.stream.readline()
        if self.resync:
            at = line.find(b"Content-Length:")
            if at < 0:
                return b"X-Rks-Skipped: 1\r\n" if line else line
            self.resync, line = False, line[at:]
        match = HEADER.fullmatch(line)
        if match and int(match.group(1)) > MAX_MESSAGE_BYTES:
            log.warning(
                "rks lsp: refused a message of %s bytes (at most %s); skipping to the next message",
                f"{int(match.group(1)):,}",
                f"{MAX_MESSAGE_BYTES:,}",
            )
            self.resync = True
            return b"X-Rks-Refused: 1\r\n"
        return line

    def read(self, n: int) -> bytes:
        body = self.stream.read(n)
        if not body:
            return body
        try:
            json.loads(body)
        except (ValueError, RecursionError) as err:
            log.warning("rks lsp: refused a message that is not JSON (%s)", str(err)[:120])
            return IGNORED_BODY
        return body
