"""The gateway's HTTP/1.1 server protocol, run by uvicorn's server loop (``uvicorn.run(http=GatewayHttpProtocol)``).

uvicorn keeps what it does well — sockets, worker processes, signals, lifespan, graceful shutdown — and this
package replaces only its per-connection protocol, the largest single item in the worker's profile under load.
"""

from core.server.protocol import GatewayHttpProtocol

__all__ = ["GatewayHttpProtocol"]
