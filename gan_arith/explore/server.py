"""The explorer's web shell: a Starlette app serving the page (static files of this package) and a JSON API.

Each route reads its JSON body, calls one `Explorer` method and answers faces as PNG data URLs with
the classifier's and judge's readings. A mistake in the request (an unknown run, a malformed
expression, an empty concept, a run of another kind) is answered with status 400 and
{"error": message}; the server keeps running. Calls run one at a time (one model, one CPU).
"""

from __future__ import annotations

import asyncio
import base64
import io
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import numpy as np
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gan_arith.errors import InputError
from gan_arith.explore.explorer import Explorer

STATIC = Path(__file__).parent / "static"


def png_data_url(image: np.ndarray) -> str:
    """A uint8 face [S, S, 3] as a `data:image/png;base64,...` URL (lossless)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_png(url: str) -> np.ndarray:
    """The uint8 pixels of a PNG data URL (what `png_data_url` wrote)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def _members(body: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
    concepts = body.get("concepts", {})
    if not isinstance(concepts, dict):
        raise InputError("concepts must map each concept name to a list of [grid seed, index] faces")
    return {str(name): [(face[0], face[1]) for face in faces] for name, faces in concepts.items()}


def create_app(explorer: Explorer) -> Starlette:
    """The app over `explorer`; POST /api/run {"run": path} switches it to another run (same settings)."""
    state = {"explorer": explorer}
    lock = asyncio.Lock()

    def faces(images: np.ndarray) -> list[dict[str, Any]]:
        readings = state["explorer"].readings(images)
        return [{"image": png_data_url(image), "readings": reading} for image, reading in zip(images, readings)]

    def info(_: dict[str, Any]) -> dict[str, Any]:
        return state["explorer"].info()

    def open_run(body: dict[str, Any]) -> dict[str, Any]:
        state["explorer"] = Explorer.open(str(body.get("run", "")), state["explorer"].settings)
        return state["explorer"].info()

    def grid(body: dict[str, Any]) -> dict[str, Any]:
        grid = state["explorer"].grid(body.get("seed", 0))
        return {"seed": grid.seed, "ids": grid.ids.tolist(), "faces": faces(grid.images)}

    def averages(body: dict[str, Any]) -> dict[str, Any]:
        images = state["explorer"].averages(_members(body))
        return {"averages": dict(zip(images, faces(np.stack(list(images.values()))))) if images else {}}

    def arithmetic(body: dict[str, Any]) -> dict[str, Any]:
        explorer, members, expression = state["explorer"], _members(body), str(body.get("expression", ""))
        result = explorer.arithmetic(expression, members)
        try:
            command, command_error = explorer.command(expression, members), None
        except InputError as error:
            command, command_error = None, str(error)
        return {"result": faces(result.result_image[None])[0], "coefficients": result.coefficients,
                "command": command, "command_error": command_error}

    def target(body: dict[str, Any]) -> np.ndarray:
        """The latent of a face reference: {"face": [seed, index]} or {"expression": ..., "concepts": ...}."""
        explorer = state["explorer"]
        if body.get("face") is not None:
            seed, index = body["face"]
            return explorer.latent((seed, index))
        return explorer.arithmetic(str(body.get("expression", "")), _members(body)).result_latent

    def edit(body: dict[str, Any]) -> dict[str, Any]:
        explorer = state["explorer"]
        latent = explorer.edited(target(body.get("target", {})), body.get("edits", []))
        return {"face": faces(explorer.render(latent[None]))[0]}

    def interpolate(body: dict[str, Any]) -> dict[str, Any]:
        explorer = state["explorer"]
        path = explorer.strip(target(body.get("a", {})), target(body.get("b", {})), str(body.get("method", "slerp")))
        return {"faces": faces(explorer.render(path))}

    def api(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            body = await request.json() if request.method == "POST" else {}
            if not isinstance(body, dict):
                return JSONResponse({"error": "the request body must be a JSON object"}, status_code=400)
            async with lock:
                try:
                    return JSONResponse(await asyncio.to_thread(handler, body))
                except ValueError as error:  # an InputError, or a check of the toolkit's on what the page sent
                    return JSONResponse({"error": str(error)}, status_code=400)

        return endpoint

    async def index(_: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    routes = [
        Route("/", index),
        Route("/api/info", api(info)),
        Route("/api/run", api(open_run), methods=["POST"]),
        Route("/api/grid", api(grid), methods=["POST"]),
        Route("/api/averages", api(averages), methods=["POST"]),
        Route("/api/arithmetic", api(arithmetic), methods=["POST"]),
        Route("/api/edit", api(edit), methods=["POST"]),
        Route("/api/interpolate", api(interpolate), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the explorer until interrupted, printing its URL (port 0: a free port, the one bound is printed).
    The explorer is warmed up before, so the page's first requests find the model compiled."""
    explorer.warm_up()
    config = uvicorn.Config(create_app(explorer), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()[1]
            print(f"Explorer of {explorer.run.workdir} ({explorer.kind}) at http://{host}:{bound}/ (Ctrl-C stops it)",
                  file=sys.stderr, flush=True)
        await task

    asyncio.run(main())
