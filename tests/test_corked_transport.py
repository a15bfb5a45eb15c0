"""The server's corked transport changes how answers leave, never what leaves: every byte, in order, also when the
connection is closed or half-closed right after the last write."""

from __future__ import annotations

import asyncio

from plumbing.corked import CorkedTransport


async def _exchange(script: str) -> bytes:
    """A loopback server that writes through a CorkedTransport as ``script`` says; returns what the client read."""
    done = asyncio.get_running_loop().create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            corked = CorkedTransport(transport, asyncio.get_running_loop())
            asyncio.get_running_loop().create_task(self.run(corked))

        async def run(self, corked: CorkedTransport) -> None:
            corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
            corked.write(b"one,")
            await asyncio.sleep(0.01)  # a later turn: sent on its own, after what came before
            corked.write(b"two,")
            corked.write(b"three")
            if script == "close":
                corked.close()
            elif script == "eof":
                corked.write_eof()
            done.set_result(None)

    server = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await done
    data = await asyncio.wait_for(reader.read(), 10)  # to the end: close and write_eof must send what was held
    writer.close()
    server.close()
    await server.wait_closed()
    return data


def test_every_byte_arrives_in_order_when_the_connection_is_closed_after_the_last_write() -> None:
    assert asyncio.run(_exchange("close")) == b"HTTP/1.1 200 OK\r\n\r\none,two,three"


def test_every_byte_arrives_in_order_when_the_answer_ends_with_a_half_close() -> None:
    assert asyncio.run(_exchange("eof")) == b"HTTP/1.1 200 OK\r\n\r\none,two,three"
