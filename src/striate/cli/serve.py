"""`striate serve (RUN | --pretrained NAME)`: an HTTP inference server with a web page, on
127.0.0.1 unless --host says otherwise."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from striate.cli.options import HELP


def serve(
    run: Annotated[
        Path | None,
        typer.Argument(metavar="RUN", help="A run folder (or its model/ folder) to serve."),
    ] = None,
    pretrained: Annotated[
        str | None,
        typer.Option(
            "--pretrained",
            metavar="NAME",
            help="Serve a network with pretrained weights (efficientnet_lite0: ImageNet) "
            "instead of a run.",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", help="The port to listen on (0: any free port).")
    ] = 8000,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="The address to listen on; 0.0.0.0 makes the server reachable from other "
            "machines.",
        ),
    ] = "127.0.0.1",
    max_mb: Annotated[
        float, typer.Option("--max-mb", help="The largest request body accepted, in MB.")
    ] = 10.0,
    max_megapixels: Annotated[
        float,
        typer.Option("--max-megapixels", help="The largest image decoded (width × height)."),
    ] = 40.0,
    max_batch: Annotated[
        int,
        typer.Option("--max-batch", help="Most images in one forward pass (1: no batching)."),
    ] = 32,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            "--batch-wait-ms", help="How long a request waits for others to share its batch."
        ),
    ] = 5.0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "cpu",
    show_help: Annotated[bool, HELP] = False,
) -> None:
    """Serve a classifier over HTTP: POST /predict (top-k classes as JSON), POST /explain,
    GET /healthz, and a web page at / to drop an image on."""
    from striate.errors import ConfigError

    if (run is None) == (pretrained is None):
        raise ConfigError(
            "serve: give a run folder (striate serve RUN) or --pretrained NAME, not both"
            if run is not None
            else "serve: give a run folder (striate serve RUN) or --pretrained NAME"
        )
    if not 0 <= port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535 (0: any free port), got {port}")
    if not (max_mb > 0 and max_megapixels > 0 and max_batch >= 1 and 0 <= batch_wait_ms <= 1000):
        raise ConfigError(
            "--max-mb and --max-megapixels must be positive, --max-batch at least 1 and "
            "--batch-wait-ms between 0 and 1000"
        )
    sock = listening_socket(host, port)  # before the model loads: a taken port fails at once
    port = sock.getsockname()[1]
    try:
        _run(sock, run, pretrained, host, port, device,
             max_bytes=round(max_mb * 1e6), max_pixels=round(max_megapixels * 1e6),
             max_batch=max_batch, wait_ms=batch_wait_ms)  # fmt: skip
    finally:
        sock.close()


def _run(sock, run, pretrained, host, port, device, **limits) -> None:
    import uvicorn

    from striate.cli.inputs import load_classifier
    from striate.serve import Limits, create_app

    model = load_classifier(run, pretrained, device)
    name = pretrained or Path(run).resolve().name
    app = create_app(model, name, Limits(**limits))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"serving {name} at http://{shown}:{port}/ (Ctrl+C stops)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"note: listening on {host}: other machines can reach this server")
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=256, timeout_keep_alive=5)
    uvicorn.Server(config).run(sockets=[sock])


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port); a port in use or an address not of this machine is a
    ConfigError in one line."""
    from striate.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host} is not an address of this machine ({e.strerror})") from e
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use (another server?); stop it or choose another "
                f"port with --port"
            ) from e
        if e.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(
                f"no permission to listen on port {port}; choose a port above 1023 with --port"
            ) from e
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    sock.set_inheritable(True)
    return sock
