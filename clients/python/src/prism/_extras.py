"""Prism's extras: what the gateway says about an answer in its `x-prism-*` headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional

__all__ = ["PrismExtras", "RateLimitInfo", "extras"]

ATTRIBUTE = "prism"


def _float(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _int(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass
class RateLimitInfo:
    """The `x-ratelimit-*` headers of an answer a rate limit applied to (all None otherwise)."""

    limit_requests: Optional[int] = None
    remaining_requests: Optional[int] = None
    reset_requests: Optional[str] = None
    limit_tokens: Optional[int] = None
    remaining_tokens: Optional[int] = None
    reset_tokens: Optional[str] = None


@dataclass
class PrismExtras:
    """What Prism adds to an answer, read from its `x-prism-*` headers.

    Every attribute is None when the gateway did not send the header (an answer that reached no
    provider has no `provider`; a model without a price has no `cost`; `cache` is absent while
    the cache is off).

    For a stream the headers arrive before the first chunk, so `stream.prism` is there at once;
    its `cost` is filled in when the usage chunk passes (ask for it with
    `stream_options={"include_usage": True}`), since a stream's cost is known only at its end.
    """

    provider: Optional[str] = None
    """`x-prism-provider`: the configured provider that answered."""
    model_used: Optional[str] = None
    """`x-prism-model-used`: the model the provider was asked for."""
    latency_ms: Optional[float] = None
    """`x-prism-latency-ms`: the gateway's time for the request (for a stream, to its headers)."""
    cost: Optional[float] = None
    """`x-prism-cost` in USD (a stream: the usage chunk's `usage.cost`)."""
    cache: Optional[str] = None
    """`x-prism-cache`: `hit`, `miss` or `skip`."""
    request_id: Optional[str] = None
    """`x-prism-request-id`: the id in the gateway's log line for this request."""
    fallback_used: bool = False
    """`x-prism-fallback-used: true`: another provider than the first choice answered."""
    routing_strategy: Optional[str] = None
    """`x-prism-routing-strategy`: the strategy that chose the provider."""
    ratelimit: RateLimitInfo = field(default_factory=RateLimitInfo)
    """The `x-ratelimit-*` headers."""
    headers: Dict[str, str] = field(default_factory=dict)
    """Every `x-prism-*` header as sent (lower-case names), for headers newer than this client."""

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "PrismExtras":
        """Reads the extras from any response's headers (for example `with_raw_response`'s)."""
        lower = {name.lower(): value for name, value in headers.items()}
        return cls(
            provider=lower.get("x-prism-provider"),
            model_used=lower.get("x-prism-model-used"),
            latency_ms=_float(lower.get("x-prism-latency-ms")),
            cost=_float(lower.get("x-prism-cost")),
            cache=lower.get("x-prism-cache"),
            request_id=lower.get("x-prism-request-id"),
            fallback_used=lower.get("x-prism-fallback-used", "").strip().lower() == "true",
            routing_strategy=lower.get("x-prism-routing-strategy"),
            ratelimit=RateLimitInfo(
                limit_requests=_int(lower.get("x-ratelimit-limit-requests")),
                remaining_requests=_int(lower.get("x-ratelimit-remaining-requests")),
                reset_requests=lower.get("x-ratelimit-reset-requests"),
                limit_tokens=_int(lower.get("x-ratelimit-limit-tokens")),
                remaining_tokens=_int(lower.get("x-ratelimit-remaining-tokens")),
                reset_tokens=lower.get("x-ratelimit-reset-tokens"),
            ),
            headers={name: value for name, value in lower.items() if name.startswith("x-prism-")},
        )

    def _take_usage(self, data: object) -> None:
        """Fills `cost` from a body's `usage.cost` (a stream's usage chunk, where the cost is known)."""
        if not isinstance(data, Mapping):
            return
        usage = data.get("usage")
        if not isinstance(usage, Mapping):
            return
        cost = usage.get("cost")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            self.cost = float(cost)


def attach(obj: object, value: PrismExtras) -> None:
    """Sets `obj.prism` without making it a model field: `model_dump()`, `to_json()` and equality
    stay what the openai package gives."""
    try:
        object.__setattr__(obj, ATTRIBUTE, value)
    except (AttributeError, TypeError):
        pass  # an object that takes no attributes (a str, a list): nothing to attach to


def extras(obj: object) -> PrismExtras:
    """`obj.prism`, typed: for code checked with mypy or pyright, which do not know that the
    openai types returned by a Prism client carry a `prism` attribute.

    Raises TypeError for an object that did not come from a Prism client."""
    value = getattr(obj, ATTRIBUTE, None)
    if not isinstance(value, PrismExtras):
        raise TypeError(f"{type(obj).__name__} carries no Prism extras: it did not come from a Prism client")
    return value
