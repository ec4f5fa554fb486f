"""The benchmark apps: each module has `app` (ASGI 3, also served by the published uvicorn and
the peers) and `mi` (the messaging interface, ours only). Served from benchmarks/ as
`apps.<module>:app` / `apps.<module>:mi`."""
