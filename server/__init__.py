"""The process: settings, logging, building the MCP server, transports and the command line."""

__version__ = "0.1.0"
