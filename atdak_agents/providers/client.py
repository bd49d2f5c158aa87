"""The Atdak clients: ``AtdakClient`` (blocking) and ``AsyncAtdakClient`` (asyncio).

Same call shape as the provider's own SDK, so its snippet runs with only the import changed::

    from atdak_agents import AtdakClient

    client = AtdakClient()  # api_key= or ATDAK_API_KEY; base_url= or ATDAK_BASE_URL
    response = client.chat.completions.create(
        model="atdak-gpt-4", messages=[{"role": "user", "content": "写一首关于春天的诗"}]
    )
    print(response.choices[0].message.content)

``AsyncAtdakClient`` also implements the :class:`~atdak_agents.providers.base.ChatModel` seam
(``await client.complete(request)``, ``await client.stream(request)``) that the agent and graph
layers call.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, overload

import httpx
from pydantic import ValidationError

from ..exceptions import (
    APIResponseValidationError,
    InvalidParameterError,
    MissingAPIKeyError,
)
from ..messages import MessageLike
from ._body import request_json
from ._errors import error_from_payload, redact, status_error
from ._http import AsyncChannel, SyncChannel, WholeResponse, body_of
from ._request import build_request, check_request
from ._retry import RetryPolicy, Timeouts, validate_deadline, validate_max_retries
from ._wire import ChatCompletion, ChatCompletionRequest
from .base import CallOptions
from .profiles import ModelRegistry, default_registry
from .streaming import AsyncCompletionStream, CompletionStream, estimate_usage

__all__ = ["DEFAULT_BASE_URL", "AsyncAtdakClient", "AtdakClient"]

DEFAULT_BASE_URL = "https://api.atdak.com/v1"
_API_KEY_ENV = "ATDAK_API_KEY"
_BASE_URL_ENV = "ATDAK_BASE_URL"


class _ClientSettings:
    """What both clients hold: the key (never shown), the endpoint, limits and the registry."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        *,
        timeout: float | Timeouts | None,
        max_retries: int,
        max_connections: int | None,
        default_headers: Mapping[str, str] | None,
        registry: ModelRegistry | None,
        retry_policy: RetryPolicy | None,
    ) -> None:
        self._api_key = api_key if api_key is not None else os.environ.get(_API_KEY_ENV)
        self.base_url = _check_base_url(
            base_url or os.environ.get(_BASE_URL_ENV) or DEFAULT_BASE_URL
        )
        self.url = f"{self.base_url}/chat/completions"
        self.timeouts = Timeouts.of(timeout)
        self.max_retries = validate_max_retries(max_retries)
        if max_connections is not None and (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise InvalidParameterError(
                "max_connections", max_connections, "an integer >= 1, or None for no limit"
            )
        self.max_connections = max_connections
        self.default_headers = dict(default_headers or {})
        self.registry = registry if registry is not None else default_registry
        self.retry_policy = retry_policy or RetryPolicy()

    def _channel_settings(self) -> dict[str, Any]:
        """Settings of the send chain; raises :class:`MissingAPIKeyError` when there is no key."""
        if not self._api_key:
            raise MissingAPIKeyError(_API_KEY_ENV)
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _user_agent(),
            **self.default_headers,
        }
        return {
            "url": self.url,
            "headers": headers,
            "timeouts": self.timeouts,
            "policy": self.retry_policy,
            "secret": self._api_key,
        }

    def _call_limits(self, options: CallOptions | None) -> tuple[int, float | None]:
        if options is None:
            return self.max_retries, None
        retries = self.max_retries
        if options.max_retries is not None:
            retries = validate_max_retries(options.max_retries)
        return retries, validate_deadline(options.deadline)

    def _body(
        self, request: ChatCompletionRequest, *, stream: bool, checked: bool = False
    ) -> tuple[ChatCompletionRequest, bytes]:
        if not checked:
            check_request(request, self.registry)
        if bool(request.stream) != stream:
            request = request.model_copy(update={"stream": True if stream else None})
        return request, request_json(request)

    def _completion(
        self,
        response: httpx.Response | WholeResponse,
        body: bytes,
        request: ChatCompletionRequest,
    ) -> ChatCompletion:
        if response.status_code >= 400:
            raise status_error(
                response.status_code, response.headers, body, url=self.url, secret=self._api_key
            )
        return _parse_completion(response, body, request, url=self.url, secret=self._api_key)

    def _refuse_json_stream(self, response: httpx.Response, body: bytes) -> Exception:
        """The error for a stream request answered with a plain JSON body."""
        if response.status_code >= 400:
            return status_error(
                response.status_code, response.headers, body, url=self.url, secret=self._api_key
            )
        text = redact(body.decode("utf-8", errors="replace"), self._api_key)
        payload = _json_object(text)
        if payload is not None and "error" in payload:
            return error_from_payload(500, payload, text, headers=response.headers, url=self.url)
        return APIResponseValidationError(
            f"asked {self.url} for a stream but it answered with a JSON body; does this endpoint "
            "support stream=True?",
            status_code=response.status_code,
            request_id=response.headers.get("x-request-id"),
            body=text[:2000],
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else f"missing (pass api_key=... or set {_API_KEY_ENV})"
        name = type(self).__name__
        return f"{name}(base_url={self.base_url!r}, api_key={key}, max_retries={self.max_retries})"


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"atdak-agents/{version('atdak-agents')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "atdak-agents"


def _check_base_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise InvalidParameterError(
            "base_url", url, "an http:// or https:// URL such as 'https://api.atdak.com/v1'"
        )
    return url.rstrip("/")


def _json_object(text: str) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "")


def _parse_completion(
    response: httpx.Response | WholeResponse,
    body: bytes,
    request: ChatCompletionRequest,
    *,
    url: str,
    secret: str | None,
) -> ChatCompletion:
    try:
        completion = ChatCompletion.model_validate_json(body)
    except ValidationError as exc:
        text = redact(body.decode("utf-8", errors="replace"), secret)
        raise APIResponseValidationError(
            f"the answer from {url} is not a chat completion ({exc.errors()[0]['msg']}); is "
            "the base URL an OpenAI-compatible /v1 endpoint?",
            status_code=response.status_code,
            request_id=response.headers.get("x-request-id"),
            body=text[:2000],
        ) from None
    if not completion.choices:
        extra = completion.model_extra or {}
        if "error" in extra:
            text = redact(body.decode("utf-8", errors="replace"), secret)
            raise error_from_payload(
                500, _json_object(text), text, headers=response.headers, url=url
            )
        raise APIResponseValidationError(
            f"the answer from {url} has no choices (an empty `choices` list): nothing to return",
            status_code=response.status_code,
            request_id=response.headers.get("x-request-id"),
            body=redact(body.decode("utf-8", errors="replace"), secret)[:2000],
        )
    if completion.usage is None:  # never report zero tokens: estimate, and say so
        completion.usage = estimate_usage(request, completion.choices, completion.model)
    return completion


# --------------------------------------------------------------------------- async


class AsyncAtdakClient(_ClientSettings):
    """The asyncio client: ``await client.chat.completions.create(...)``.

    One connection pool per client (HTTP/1.1 keep-alive, :mod:`._h1`; up to
    ``max_connections`` connections, 1,000 by default). Use it as ``async with`` or call
    ``await client.close()``. ``transport=`` takes any httpx async transport (e.g.
    ``httpx.MockTransport``); ``http_client=`` takes a configured ``httpx.AsyncClient`` (proxies,
    custom TLS) — neither is closed by the client.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | Timeouts | None = None,
        max_retries: int = 2,
        max_connections: int | None = 1000,
        default_headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        registry: ModelRegistry | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_connections=max_connections,
            default_headers=default_headers,
            registry=registry,
            retry_policy=retry_policy,
        )
        self._transport = transport
        self._http_client = http_client
        self._channel_: AsyncChannel | None = None
        self.chat = _AsyncChat(self)

    def _channel(self) -> AsyncChannel:
        if self._channel_ is None:
            self._channel_ = AsyncChannel(
                transport=self._transport,
                http_client=self._http_client,
                max_connections=self.max_connections,
                **self._channel_settings(),
            )
        return self._channel_

    def complete(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> Coroutine[Any, Any, ChatCompletion]:
        """Send ``request`` and return the whole answer (retrying as configured): await it."""
        return self._complete(request, options, None)

    async def stream(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> AsyncCompletionStream:
        """Open a stream for ``request``; retries happen until its first chunk, never after."""
        return await self._stream(request, options, None)

    async def _stream(
        self,
        request: ChatCompletionRequest,
        options: CallOptions | None,
        headers: Mapping[str, str] | None,
        checked: bool = False,
    ) -> AsyncCompletionStream:
        request, body = self._body(request, stream=True, checked=checked)
        max_retries, deadline = self._call_limits(options)
        channel = self._channel()

        async def handle(
            response: httpx.Response | WholeResponse, ends_at: float | None
        ) -> AsyncCompletionStream:
            assert isinstance(response, httpx.Response)  # a stream is never read whole first
            if response.status_code >= 400 or _is_json(response):
                raise self._refuse_json_stream(response, await body_of(response))
            stream = AsyncCompletionStream(
                response, request, url=self.url, secret=self._api_key, ends_at=ends_at
            )
            try:
                return await stream.open()
            except BaseException:
                await stream.aclose()
                raise

        http_request = channel.prepare_request(body, stream=True, extra_headers=headers)
        return await channel.send(http_request, handle, max_retries=max_retries, deadline=deadline)

    async def _complete(
        self,
        request: ChatCompletionRequest,
        options: CallOptions | None,
        headers: Mapping[str, str] | None,
        checked: bool = False,
    ) -> ChatCompletion:
        request, body = self._body(request, stream=False, checked=checked)
        max_retries, deadline = self._call_limits(options)
        channel = self._channel()

        async def handle(
            response: httpx.Response | WholeResponse, ends_at: float | None
        ) -> ChatCompletion:
            if isinstance(response, WholeResponse):  # read already: no coroutine to await
                return self._completion(response, response.body(), request)
            return self._completion(response, await body_of(response), request)

        http_request = channel.prepare_request(body, stream=False, extra_headers=headers)
        return await channel.send(http_request, handle, max_retries=max_retries, deadline=deadline)

    async def close(self) -> None:
        """Close the connection pool (the client cannot be used afterwards in this event loop)."""
        if self._channel_ is not None:
            await self._channel_.close()

    async def __aenter__(self) -> AsyncAtdakClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _AsyncChat:
    def __init__(self, client: AsyncAtdakClient) -> None:
        self.completions = AsyncCompletions(client)


class AsyncCompletions:
    """``client.chat.completions``: one method, ``create``."""

    def __init__(self, client: AsyncAtdakClient) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageLike],
        stream: Literal[False] = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageLike],
        stream: Literal[True],
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> AsyncCompletionStream: ...

    async def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageLike],
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> ChatCompletion | AsyncCompletionStream:
        """Create a chat completion; with ``stream=True`` an open :class:`AsyncCompletionStream`.

        Parameters follow the Atdak contract and are checked before anything is sent.
        ``max_retries`` and ``deadline`` (seconds for the whole call, retries included) override
        the client's settings for this call; ``extra_body`` adds fields for OpenAI-compatible
        endpoints that take more than the contract.
        """
        request = build_request(
            model=model,
            messages=messages,
            registry=self._client.registry,
            extra_body=extra_body,
            stream=_check_stream(stream) or None,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            tools=tools,
            tool_choice=tool_choice,
        )
        options = _options(max_retries, deadline)
        if stream:
            return await self._client._stream(request, options, extra_headers, checked=True)
        return await self._client._complete(request, options, extra_headers, checked=True)


def _check_stream(stream: object) -> bool:
    if not isinstance(stream, bool):
        raise InvalidParameterError("stream", stream, "True or False")
    return stream


def _options(max_retries: int | None, deadline: float | None) -> CallOptions | None:
    if max_retries is None and deadline is None:
        return None
    return CallOptions(max_retries=max_retries, deadline=deadline)


# --------------------------------------------------------------------------- sync


class AtdakClient(_ClientSettings):
    """The blocking client: ``client.chat.completions.create(...)``.

    One pooled ``httpx.HTTPTransport`` per client, safe to share between threads. Use it as
    ``with`` or call ``client.close()``. ``transport=`` takes any httpx transport; ``http_client=``
    a configured ``httpx.Client`` — neither is closed by the client.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | Timeouts | None = None,
        max_retries: int = 2,
        max_connections: int | None = 100,
        default_headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        registry: ModelRegistry | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_connections=max_connections,
            default_headers=default_headers,
            registry=registry,
            retry_policy=retry_policy,
        )
        self._transport = transport
        self._http_client = http_client
        self._channel_: SyncChannel | None = None
        self.chat = _SyncChat(self)

    def _channel(self) -> SyncChannel:
        if self._channel_ is None:
            self._channel_ = SyncChannel(
                transport=self._transport,
                http_client=self._http_client,
                max_connections=self.max_connections,
                **self._channel_settings(),
            )
        return self._channel_

    def _complete(
        self,
        request: ChatCompletionRequest,
        options: CallOptions | None,
        headers: Mapping[str, str] | None,
        checked: bool = False,
    ) -> ChatCompletion:
        request, body = self._body(request, stream=False, checked=checked)
        max_retries, deadline = self._call_limits(options)
        channel = self._channel()

        def handle(response: httpx.Response, ends_at: float | None) -> ChatCompletion:
            try:
                data = response.read()
            finally:
                response.close()
            return self._completion(response, data, request)

        http_request = channel.build_request(body, stream=False, extra_headers=headers)
        return channel.send(http_request, handle, max_retries=max_retries, deadline=deadline)

    def _stream(
        self,
        request: ChatCompletionRequest,
        options: CallOptions | None,
        headers: Mapping[str, str] | None,
        checked: bool = False,
    ) -> CompletionStream:
        request, body = self._body(request, stream=True, checked=checked)
        max_retries, deadline = self._call_limits(options)
        channel = self._channel()

        def handle(response: httpx.Response, ends_at: float | None) -> CompletionStream:
            if response.status_code >= 400 or _is_json(response):
                try:
                    data = response.read()
                finally:
                    response.close()
                raise self._refuse_json_stream(response, data)
            stream = CompletionStream(
                response, request, url=self.url, secret=self._api_key, ends_at=ends_at
            )
            try:
                return stream.open()
            except BaseException:
                stream.close()
                raise

        http_request = channel.build_request(body, stream=True, extra_headers=headers)
        return channel.send(http_request, handle, max_retries=max_retries, deadline=deadline)

    def close(self) -> None:
        """Close the connection pool."""
        if self._channel_ is not None:
            self._channel_.close()

    def __enter__(self) -> AtdakClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _SyncChat:
    def __init__(self, client: AtdakClient) -> None:
        self.completions = Completions(client)


class Completions:
    """``client.chat.completions``: one method, ``create``."""

    def __init__(self, client: AtdakClient) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageLike],
        stream: Literal[False] = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageLike],
        stream: Literal[True],
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> CompletionStream: ...

    def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageLike],
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> ChatCompletion | CompletionStream:
        """Create a chat completion; with ``stream=True`` an open :class:`CompletionStream`.

        See :meth:`AsyncCompletions.create` for the parameters.
        """
        request = build_request(
            model=model,
            messages=messages,
            registry=self._client.registry,
            extra_body=extra_body,
            stream=_check_stream(stream) or None,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            tools=tools,
            tool_choice=tool_choice,
        )
        options = _options(max_retries, deadline)
        if stream:
            return self._client._stream(request, options, extra_headers, checked=True)
        return self._client._complete(request, options, extra_headers, checked=True)
