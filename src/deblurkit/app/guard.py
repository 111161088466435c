"""Who may drive the web app: only pages of the app itself, on this computer.

Two checks run on every request, before any route (:func:`refusal`):

- **Host allow-list** (against DNS rebinding: a web page whose domain name is re-pointed to
  127.0.0.1 reaches the app with its own name in the ``Host`` header). Allowed host names: the
  address the app is bound to, ``127.0.0.1``, ``localhost``, ``::1`` and the names given with
  ``deblurkit serve --allow-host``; bound to every interface (``0.0.0.0`` / ``::``), any IP
  address literal too (rebinding needs a domain name).
- **Same origin for state-changing requests** (anything but GET / HEAD / OPTIONS, against
  cross-site request forgery: another site's page can POST ``text/plain`` to the app without
  any CORS preflight). A browser request is refused when its ``Sec-Fetch-Site`` is not
  ``same-origin`` / ``none``, or its ``Origin`` is not this app's own origin (``null``
  included). Clients that send neither header (curl, scripts) are not browsers driven by a web
  page and pass.

Refusals are 403 answers with a one-line ``{"error": ...}``.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

__all__ = ["LOOPBACK_NAMES", "SAFE_METHODS", "allowed_host_names", "host_name", "refusal"]

#: Host names that always reach this computer.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
#: Methods that change nothing (the only ones accepted from another origin).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARDS = {"0.0.0.0", "::", ""}


def host_name(host: str) -> str:
    """The name part of a ``Host`` header or bind address, lower case, without port, brackets or
    trailing dot: ``"[::1]:8000"`` -> ``"::1"``, ``"LocalHost:80"`` -> ``"localhost"``."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def allowed_host_names(bind_host: str, extra: Iterable[str] = ()) -> tuple[frozenset[str], bool]:
    """``(names, any_ip)``: the host names accepted in ``Host`` headers for an app bound to
    ``bind_host`` (plus ``extra``), and whether every IP literal is accepted too (bound to all
    interfaces)."""
    bound = host_name(bind_host)
    names = set(LOOPBACK_NAMES) | {host_name(h) for h in extra if h.strip()}
    if bound not in _WILDCARDS:
        names.add(bound)
    return frozenset(names), bound in _WILDCARDS


def refusal(method: str, headers: Mapping[str, str], names: frozenset[str], any_ip: bool) -> str | None:
    """Why the request must be refused (a one-line message), or ``None`` when it may proceed.

    Args:
        method: the HTTP method.
        headers: request headers (case-insensitive mapping, as Starlette's).
        names, any_ip: from :func:`allowed_host_names`.
    """
    raw_host = headers.get("host", "")
    name = host_name(raw_host)
    if not name or not (name in names or (any_ip and _is_ip(name))):
        shown = raw_host[:80] or "(none)"
        return (f"host '{shown}' refused: this app answers only requests addressed to "
                f"{', '.join(sorted(names))} (add a name with deblurkit serve --allow-host)")
    if method.upper() in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site[:40]}): only the deblurkit page itself may send it"
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != raw_host.strip().lower():
            return f"cross-site request refused (Origin: {origin[:80]}): only the deblurkit page itself may send it"
    return None
