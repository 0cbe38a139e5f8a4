"""The bare-SDK baseline for start-up figures: an MCPServer with one tool over stdio, nothing else."""

from mcp.server import MCPServer

server = MCPServer("minimal")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    server.run("stdio")
