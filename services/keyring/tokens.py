"""Warden keys as agents hold them: ``wk_`` then 43 url-safe characters (256 random bits). Listed by their prefix
(``wk_`` and the first 8 characters), which says which key it is without saying enough to guess it."""

from __future__ import annotations

import re
import secrets

SECRET_PREFIX = "wk_"
_RANDOM_BYTES = 32
_SHAPE = re.compile(r"wk_[A-Za-z0-9_-]{43}")
PREFIX_LENGTH = len(SECRET_PREFIX) + 8


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def well_formed(secret: str) -> bool:
    return _SHAPE.fullmatch(secret) is not None


def display_prefix(secret: str) -> str:
    return secret[:PREFIX_LENGTH]
