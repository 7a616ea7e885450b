"""``grantline mcp``: an MCP server through which an AI agent asks for access as a tool call.

:mod:`grantline.mcp.tools` holds what the tools do, over :mod:`grantline.client`;
:mod:`grantline.mcp.server` exposes them with the ``mcp`` SDK (the only module that imports
it) over stdio or streamable HTTP. See docs/mcp.md.
"""
