#!/bin/sh
# One shared kimi-mcp for every host below that connects over HTTP (docs/http.md): streamable HTTP on
# http://127.0.0.1:8765/mcp, every request with `Authorization: Bearer $KIMI_MCP_HTTP_TOKEN`.
# Give the same token to the hosts; the Kimi credential (KIMI_API_KEY or `kimi-mcp login`) stays with the server.
export KIMI_MCP_HTTP_TOKEN="$(openssl rand -hex 32)"
kimi-mcp serve --transport http
