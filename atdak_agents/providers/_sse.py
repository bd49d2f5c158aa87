"""An incremental decoder for server-sent events, following the WHATWG SSE specification.

Bytes go in as they arrive from the network, in pieces of any size; complete events come out::

    decoder = SSEDecoder()
    for piece in network_reads:
        for event in decoder.feed(piece):
            handle(event.data)

What the specification asks, and this decoder does:

- lines end in CRLF, LF or CR, even when a CRLF pair is split across two reads;
- bytes are decoded as UTF-8 one *complete line* at a time, so a multibyte character split
  across reads is reassembled first (invalid bytes become U+FFFD, as the spec says);
- a leading byte-order mark is dropped; lines starting with ``:`` are comments (keep-alives);
- ``field: value`` with one optional space after the colon; a line without a colon is a field
  with an empty value; unknown fields are ignored;
- several ``data:`` lines of one event are joined with ``\\n``; an event without any ``data:``
  line is not dispatched; ``event:`` sets the event type (default ``"message"``); ``id:`` sets
  the last event id (ignored when it contains NUL) which later events keep; ``retry:`` takes
  only ASCII digits;
- an event is dispatched by a blank line; what is left when the stream ends is not an event
  (:meth:`SSEDecoder.pending` exposes it for callers that want to inspect it).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]

_BOM = "\ufeff"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: ``data`` (lines joined by ``\\n``), ``event``, ``id``, ``retry``."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` objects, one network read at a time."""

    def __init__(self) -> None:
        self._partial = b""  # bytes of a line whose end has not arrived yet
        self._after_cr = (
            False  # the last line ended in CR: a LF at the start of the next read pairs with it
        )
        self._at_start = True
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one network read; returns the events it completed (often none or one)."""
        if self._after_cr and chunk:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        lines = (self._partial + chunk).splitlines(keepends=True)
        last = lines[-1]
        if last[-1:] in (b"\n", b"\r"):
            self._partial = b""
            self._after_cr = last[-1:] == b"\r"
        else:
            self._partial = lines.pop()
        events: list[ServerSentEvent] = []
        for raw in lines:
            event = self._process_line(self._decode(raw.rstrip(b"\r\n")))
            if event is not None:
                events.append(event)
        return events

    def pending(self) -> ServerSentEvent | None:
        """What the stream left undispatched (no blank line after it), or ``None``.

        The specification discards it; callers may look at it, for example to accept a final
        ``data: [DONE]`` that lacks its blank line.
        """
        data = list(self._data)
        if self._partial:
            field, _, value = self._decode(self._partial).partition(":")
            if field == "data":
                data.append(value[1:] if value.startswith(" ") else value)
        if not data:
            return None
        return ServerSentEvent(
            "\n".join(data), self._event or "message", self._last_id, self._retry
        )

    def _decode(self, raw: bytes) -> str:
        line = raw.decode("utf-8", errors="replace")
        if self._at_start:
            self._at_start = False
            if line.startswith(_BOM):
                line = line[1:]
        return line

    def _process_line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment, e.g. a keep-alive
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or "message", self._last_id, self._retry)
