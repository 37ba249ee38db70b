"""The dashboard's web app: Starlette routes, Jinja pages, a JSON API and a server-sent event stream.

Each page is served with the job's state already inside it (a JSON script element), so the
browser paints tables and curves without a second request; `/api/stream` then pushes a new
state whenever the source sees new blocks (SSE: one-way, plain HTTP, reconnects by itself,
which is all a page that only watches needs). Every script and stylesheet is served from the
package's `static/` folder: users' machines may be offline, so nothing comes from a CDN.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fedledger.dashboard.sources import Source
from fedledger.errors import FedledgerError

HERE = Path(__file__).resolve().parent
#: the pages of a job, in the navigation bar's order: path suffix -> title
PAGES = {
    "": "Job",
    "organisations": "Organisations",
    "privacy": "Privacy",
    "lineage": "Lineage",
    "audit": "Audit",
}


@dataclass(frozen=True)
class DashboardConfig:
    """How the app follows its source: seconds between polls for new blocks, and keep-alive."""

    poll_seconds: float = 1.0
    keepalive_seconds: float = 15.0


def create_app(source: Source, config: DashboardConfig | None = None) -> Starlette:
    """The ASGI app over one source (a run directory or a live coordinator)."""
    cfg = config or DashboardConfig()
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return templates.TemplateResponse(
            request, name, {"source": source.description, "pages": PAGES, **context}, status_code=status
        )

    async def state_of(job_id: int) -> dict[str, Any]:
        return await run_in_threadpool(source.state, job_id)

    async def jobs(request: Request) -> Response:
        await run_in_threadpool(source.poll)
        states = [await state_of(j) for j in source.job_ids()]
        summary = [
            {
                "job_id": s["job_id"],
                "outcome": s["outcome"],
                "phase": s["phase"]["name"],
                "rounds": sum(1 for r in s["rounds"] if r["status"] == "finalized"),
                "of": s["job"].get("rounds", 0),
                "organisations": len(s["organisations"]),
                "block": s["block"],
            }
            for s in states
        ]
        return page(request, "jobs.html", {"jobs": summary, "title": "Jobs"})

    async def job_page(request: Request) -> Response:
        job_id = int(request.path_params["job"])
        kind = request.path_params.get("page", "")
        if kind not in PAGES:
            return page(request, "error.html", {"title": "Not found", "message": f"no page {kind!r}"}, 404)
        try:
            state = await state_of(job_id)
        except FedledgerError as exc:
            return page(request, "error.html", {"title": "Not found", "message": str(exc)}, 404)
        return page(
            request,
            "job.html",
            {"state": state, "job_id": job_id, "kind": kind or "job", "title": PAGES[kind]},
        )

    async def api_state(request: Request) -> Response:
        try:
            return JSONResponse(await state_of(int(request.path_params["job"])))
        except FedledgerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def api_audit(request: Request) -> Response:
        try:
            result = await run_in_threadpool(source.audit, int(request.path_params["job"]))
        except FedledgerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(result)

    async def stream(request: Request) -> Response:
        job_id = int(request.query_params.get("job", "0"))

        async def events() -> AsyncIterator[str]:
            seen: tuple[int, int, str] | None = None
            idle = 0.0
            while not await request.is_disconnected():
                try:
                    await run_in_threadpool(source.poll)
                    state = await state_of(job_id)
                except FedledgerError as exc:
                    yield f"event: problem\ndata: {json.dumps(str(exc))}\n\n"
                    state = None
                if state is not None:
                    mark = (state["revision"], state["block"], state["phase"]["name"])
                    if mark != seen:
                        seen, idle = mark, 0.0
                        yield f"event: state\ndata: {json.dumps(state)}\n\n"
                if idle >= cfg.keepalive_seconds:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(cfg.poll_seconds)
                idle += cfg.poll_seconds

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    return Starlette(
        routes=[
            Route("/", jobs),
            Route("/job/{job:int}", job_page),
            Route("/job/{job:int}/{page}", job_page),
            Route("/api/job/{job:int}", api_state),
            Route("/api/job/{job:int}/audit", api_audit, methods=["POST"]),
            Route("/api/stream", stream),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]
    )
