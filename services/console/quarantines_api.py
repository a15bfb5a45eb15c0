"""Quarantine decisions: ``GET /api/quarantines`` lists them, ``DELETE /api/quarantines/{profile_id}/{agent_id}``
lifts one at once on every ingress."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plumbing.config.base import ReplicatedMap
from schemas.errors import error_json
from schemas.quarantine import Quarantine, quarantine_key


class QuarantinesApi:
    def __init__(self, quarantines: ReplicatedMap[Quarantine]) -> None:
        self.quarantines = quarantines

    async def list_quarantines(self, request: Request) -> Response:
        now = datetime.now(UTC)
        include_expired = request.query_params.get("include_expired") == "true"
        items = [q for q in self.quarantines.values() if include_expired or q.active(now)]
        items.sort(key=lambda q: q.created_at, reverse=True)
        return JSONResponse({"items": [{**q.model_dump(mode="json"), "active": q.active(now)} for q in items]})

    async def lift(self, request: Request) -> Response:
        key = quarantine_key(request.path_params["profile_id"], request.path_params["agent_id"])
        if not await self.quarantines.delete(key):
            return JSONResponse(error_json("no such quarantine", "not_found_error"), status_code=404)
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        return [
            Route("/api/quarantines", self.list_quarantines, methods=["GET"]),
            Route("/api/quarantines/{profile_id}/{agent_id}", self.lift, methods=["DELETE"]),
        ]
