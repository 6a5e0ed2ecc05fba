"""rag as an MCP server: the tools, resources and prompt agents use (stdio and streamable HTTP)."""
