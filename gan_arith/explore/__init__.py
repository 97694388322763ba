"""An interactive latent explorer in the browser (the optional `explore` extra: starlette, uvicorn).

- explorer: the model side, calls into the latent toolkit on one loaded run (grids, concepts,
  arithmetic, the command line that reproduces it, attribute edits, interpolation strips, readings);
- server: the Starlette app (JSON API and the page's static files) and `serve`.
The core library never imports this package.
"""
