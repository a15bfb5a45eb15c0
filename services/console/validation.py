"""How an admin API names what is wrong with a body: the first few fields and their problems."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from schemas.errors import error_json

M = TypeVar("M", bound=BaseModel)


def validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        field = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{field}: {error['msg']}")
    return "; ".join(parts)


async def read_model(request: Request, model: type[M]) -> M | Response:
    """The request's JSON body as ``model`` (an empty body is ``{}``), or the answer saying what is wrong: 400 for a
    body that is not JSON, 422 naming the fields otherwise."""
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        return JSONResponse(error_json(f"the body is not valid JSON: {exc}", "invalid_request_error"), status_code=400)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        return JSONResponse(error_json(validation_message(exc), "validation_error"), status_code=422)
