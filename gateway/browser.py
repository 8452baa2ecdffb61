"""What a browser tells us about a request: which site sent it, and whether
it reached us over https. Used by the dashboard's forms and cookies."""

from __future__ import annotations

import urllib.parse

from fastapi import Request

from stanch.models.settings import Settings


def from_our_pages(request: Request, settings: Settings) -> bool:
    """A form posted from one of our own pages. Browsers say where a request
    comes from (Sec-Fetch-Site, Origin); a client that is not a browser says
    neither and cannot carry a victim's cookies anyway."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    ours = {
        f"{request.url.scheme}://{request.headers.get('host', '')}",
        _origin_of(settings.gateway_url),
    }
    return origin in ours


def _origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def over_https(request: Request, settings: Settings) -> bool:
    """Cookies are Secure when the browser reached us over https: directly, or
    through a TLS-terminating proxy whose X-Forwarded-Proto uvicorn trusts
    (FORWARDED_ALLOW_IPS, loopback by default), or when the gateway's public
    URL is https."""
    return request.url.scheme == "https" or settings.gateway_url.startswith("https")
