#!/bin/sh
# Claude Code, stdio: Claude Code starts `kimi-mcp serve` itself and hands it your Kimi Code API key.
# Without KIMI_API_KEY, run `kimi-mcp login` once and drop the -e option.
# In `claude -p` scripts also set MCP_CONNECTION_NONBLOCKING=0, or the first turn starts without Kimi.
claude mcp add kimi -e KIMI_API_KEY="$KIMI_API_KEY" -- kimi-mcp serve
