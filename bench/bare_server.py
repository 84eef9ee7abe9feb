"""The anchor: a bare `MCPServer` with one trivial tool, over stdio. What any Python MCP server costs."""

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("bare", log_level="WARNING")


@mcp.tool()
def ping() -> str:
    """Answers pong."""
    return "pong"


if __name__ == "__main__":
    mcp.run("stdio")
