"""Run a model service under uvicorn until SIGINT/SIGTERM, then shut down gracefully.

On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to
`graceful_timeout_s`), then runs the app's shutdown, which serves whatever is still queued.
A model that cannot be served stops the server with `ModelError`. Connections go through
`connections.GuardedProtocol` (header and body read timeouts, an evicting connection cap)
instead of uvicorn's `limit_concurrency`, which answered probes 503 behind idle sockets.
"""

from __future__ import annotations

import socket

import uvicorn

from kopilot.serving import api, connections, detectors, errors, logs, settings


class Server:
    """A uvicorn server for one model service; `run()` blocks until it stops."""

    def __init__(
        self,
        config: settings.ServeSettings,
        *,
        sock: socket.socket | None = None,
        loader: api.Loader = detectors.load,
    ) -> None:
        self.config = config
        self._sock = sock
        self._fatal: Exception | None = None
        self.service = api.Service(config, loader=loader, on_fatal=self._stop_on_fatal)
        self.app = api.create_app(self.service)
        self.uvicorn = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=config.host,
                port=config.port,
                log_config=logs.uvicorn_log_config(config.log_level),
                log_level=config.log_level,
                access_log=False,
                timeout_graceful_shutdown=int(config.graceful_timeout_s) or None,
                http=connections.protocol(
                    config.connections, self.service.instruments, self.service.fast_paths()
                ),
                timeout_keep_alive=config.connections.keep_alive_s,
                lifespan="on",
                server_header=False,
            )
        )

    def _stop_on_fatal(self, error: Exception) -> None:
        self._fatal = error
        self.uvicorn.should_exit = True

    def run(self) -> None:
        """Serve until a signal (or a fatal model error, raised here as `ModelError`)."""
        self.uvicorn.run(sockets=[self._sock] if self._sock is not None else None)
        if self._fatal is not None:
            raise errors.ModelError(str(self._fatal)) from self._fatal

    def stop(self) -> None:
        """Ask the server to shut down gracefully (from another thread)."""
        self.uvicorn.should_exit = True
