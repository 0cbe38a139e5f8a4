"""`kimi-mcp doctor`: what kimi-mcp would do with these settings, and what stands in the way (docs/troubleshooting.md).

One module per concern: settings_check (settings in effect, secrets masked), proxy (routing and CA settings),
network (DNS/TCP/TLS), credential, api (/v1/models and the wire's allow-list), state (folder, login file, store),
runner (order, concurrency, time bounds), threads (abandonable blocking work), render (text and JSON), command
(the CLI entry).
"""
