#!/bin/sh
# Claude Code, HTTP: connect to a running `kimi-mcp serve --transport http` (see ../http-server/serve.sh).
# The token is the server's KIMI_MCP_HTTP_TOKEN; the shell puts it into the header once, when you add the server.
claude mcp add --transport http kimi http://127.0.0.1:8765/mcp --header "Authorization: Bearer $KIMI_MCP_HTTP_TOKEN"
