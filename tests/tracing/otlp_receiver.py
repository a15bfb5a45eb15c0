"""A local OTLP/HTTP receiver for the exporter's own tests: keeps every export request it is sent, decoded, and
answers each with the status the test chose."""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    data = gzip.decompress(data)
                elif encoding == "deflate":
                    data = zlib.decompress(data)
                headers = {key.lower(): value for key, value in self.headers.items()}
                receiver.requests.append((headers | {"path": self.path}, ExportTraceServiceRequest.FromString(data)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def spans(self) -> list[Span]:
        return [span for _, request in self.requests for span in iter_spans(request)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def iter_spans(request: ExportTraceServiceRequest) -> Iterator[Span]:
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            yield from scope.spans


def plain(attributes: Any) -> dict[str, Any]:
    """OTLP key-values as a plain dict."""

    def value(any_value: Any) -> Any:
        which = any_value.WhichOneof("value")
        if which == "array_value":
            return [value(item) for item in any_value.array_value.values]
        return getattr(any_value, which) if which else None

    return {attribute.key: value(attribute.value) for attribute in attributes}
