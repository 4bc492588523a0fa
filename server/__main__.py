"""`python -m server`: set up the stores, migrate, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from server import logs, ports, tracing
from server.app import App
from server.bootstrap import Runtime
from server.tracing import Tracing
from service.config import Settings
from service.errors import ConfigurationError, Unavailable

log = logging.getLogger("timemachine")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="Time Machine gRPC server")
    parser.add_argument("--migrate-only", action="store_true", help="apply migrations and exit")
    args = parser.parse_args()
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        for problem in str(exc).splitlines():  # every bad setting, one line each
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if not args.migrate_only:
        try:  # before any store starts: a taken port is one line, and nothing runs for nothing
            ports.require_free(settings.grpc_address, "TM_GRPC_ADDRESS")
            if settings.metrics_address:
                ports.require_free(settings.metrics_address, "TM_METRICS_ADDRESS")
        except ConfigurationError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    tracer = Tracing(tracing.provider_from_env())
    tracer.instrument_s3()
    runtime = Runtime(settings, tracer)
    app: App | None = None
    try:
        runtime.start_stores()
        runtime.migrate()
        if args.migrate_only:
            return 0
        stores = runtime.open()
        app = App(settings, stores, tracer=tracer)
        app.start()
        if tracer.enabled:
            log.info("tracing: spans go to the OTLP endpoint in OTEL_EXPORTER_OTLP_*")
        tls = app.tls
        if tls is not None:  # renewed certificate files are read again at the next handshake
            signal.signal(signal.SIGHUP, lambda *_: tls.reload())
        host = settings.grpc_address.rsplit(":", 1)[0]
        transport = "-plaintext" if tls is None else f"-cacert <the CA of {settings.tls_cert_file}>"
        log.info("serving Time Machine on %s (port %d)", settings.grpc_address, app.port)
        if settings.log_format == "text":  # a banner for people; JSON logs stay one object per line
            print(
                f"\nTime Machine is serving on {settings.grpc_address}. Try:\n"
                f"  grpcurl {transport} {host}:{app.port} list\n"
                f"  grpcurl {transport} -H 'x-tenant-id: 00000000-0000-4000-8000-000000000001' "
                f"-H 'x-user-id: 00000000-0000-4000-8000-000000000002' "
                f'-d \'{{"chat_id": "00000000-0000-4000-8000-0000000000c1", "role": "MESSAGE_ROLE_USER", '
                f'"content": "hello"}}\' {host}:{app.port} timemachine.v1.TimeMachineService/SaveMessage\n'
                "Press Ctrl-C to stop.\n",
                flush=True,
            )
        stop.wait()
        log.info("shutting down: health NOT_SERVING, finishing in-flight calls")
        return 0
    except (ConfigurationError, Unavailable) as exc:
        log.error("cannot start: %s", exc)
        return 1
    finally:
        if app is not None:
            app.stop()
        runtime.stop()
        tracer.shutdown()  # the last spans are sent
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
