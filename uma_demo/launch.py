"""``make demo``: seed, then start every part of the demo, wait until each is healthy, print
where to go, and stop everything on Ctrl-C.

    python -m uma_demo.launch

Parts: the embedded MQTT broker (unless MQTT_URL names one), the authorization server, the
EHR, the doctor app (each under gunicorn), the EHR's MQTT ingestion, one BP monitor.
Only orchestration: every part is its own process, talking HTTP and MQTT.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

# (variable that moves it, default port)
PORTS = {"AS_PORT": 8400, "EHR_PORT": 8401, "DOCTOR_PORT": 8402}
MQTT_PORTS = (1883, 1884)  # the embedded broker takes the first free one (or MQTT_PORT)
HEALTH_TIMEOUT = 60
HEALTH_EVERY = 5  # seconds between checks of the running apps' /healthz


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class BadSetting(ValueError):
    """An environment variable the launcher cannot use; the message names it."""


def number_setting(env: dict, name: str, default: int, highest: int) -> int:
    """``env[name]`` as a whole number from 1 to ``highest``, or ``default`` when unset."""
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= highest:
        raise BadSetting(f"{name}={raw!r} is not a whole number from 1 to {highest}")
    return value


def port_setting(env: dict, name: str, default: int) -> int:
    return number_setting(env, name, default, 65535)


def fail(message: str) -> int:
    print(f"make demo: {message}", file=sys.stderr)
    return 1


def health_problem(url: str) -> str | None:
    """What an app's ``/healthz`` reports as wrong (its database's schema), None when healthy;
    raises OSError while it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return None
    except urllib.error.HTTPError as error:
        try:
            return json.loads(error.read()).get("problem") or f"/healthz answered {error.code}"
        except ValueError:
            return f"/healthz answered {error.code}"


def wait_healthy(name: str, url: str, process: subprocess.Popen) -> str | None:
    """None once the app answers healthy; otherwise why it did not."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"{name} stopped (see the log above)"
        try:
            problem = health_problem(url)
        except OSError:
            time.sleep(0.3)
            continue
        return problem and f"{name}: {problem}"
    return f"{name} did not become healthy at {url} (see the log above)"


def watch(processes: list[tuple[str, subprocess.Popen]], health_urls: dict[str, str]) -> str:
    """Wait until a part stops or an app reports its database's schema wrong (a downgrade or
    another version's code on the same database); say which."""
    checked = time.monotonic()
    while True:
        died = [name for name, process in processes if process.poll() is not None]
        if died:
            return f"{', '.join(died)} stopped; stopping the rest"
        if time.monotonic() - checked >= HEALTH_EVERY:
            checked = time.monotonic()
            for name, url in health_urls.items():
                try:
                    problem = health_problem(url)
                except OSError:
                    continue  # a busy app answers late; a dead one is caught above
                if problem:
                    return f"{name}: {problem}; stopping everything"
        time.sleep(0.5)


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def main() -> int:
    env = dict(os.environ)
    python = sys.executable
    try:
        workers = str(number_setting(env, "WORKERS", 2, 64))
        ports = {name: port_setting(env, name, default) for name, default in PORTS.items()}
        mqtt_ports = (port_setting(env, "MQTT_PORT", 0),) if env.get("MQTT_PORT") else MQTT_PORTS
    except BadSetting as error:
        return fail(str(error))
    for name, port in ports.items():
        if not port_free(port):
            return fail(f"port {port} is in use; set {name}=<another port> to move it")
    env.setdefault("AS_ISSUER", f"http://localhost:{ports['AS_PORT']}")
    env.setdefault("EHR_URL", f"http://localhost:{ports['EHR_PORT']}")
    env.setdefault("DOCTOR_URL", f"http://localhost:{ports['DOCTOR_PORT']}")

    processes: list[tuple[str, subprocess.Popen]] = []

    def start(name: str, *command: str) -> subprocess.Popen:
        process = subprocess.Popen(command, env=env)
        processes.append((name, process))
        return process

    def stop_all(*_args) -> None:
        for _name, process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    # Each command first migrates its app's database to the code's schema (Alembic); the
    # served apps only check it, and /healthz reports a mismatch.
    # From here on SIGTERM behaves like Ctrl-C, so no part is left running on its port.
    signal.signal(signal.SIGTERM, _interrupt)
    for command in (
        ("authz_server.cli", "seed-demo"),
        ("authz_server.cli", "purge-expired"),
        ("records_server.cli", "seed-demo"),
        ("doctor_client.cli", "init-db"),
    ):
        if subprocess.run([python, "-m", *command], env=env).returncode != 0:
            return fail(f"{' '.join(command)} failed (see above); `make demo-reset` starts afresh")

    try:
        if not env.get("MQTT_URL"):
            free = [p for p in mqtt_ports if port_free(p)]
            if not free:
                return fail(
                    f"port(s) {', '.join(map(str, mqtt_ports))} in use; "
                    "set MQTT_PORT=<another port> or MQTT_URL=mqtt://host:port"
                )
            env["MQTT_URL"] = f"mqtt://127.0.0.1:{free[0]}"
            # Sessions kept across restarts (broker_persistence.py); `make demo-reset` wipes it.
            state = ("--state-file", "instance/mqtt_broker.db")
            start("MQTT broker", python, "-m", "uma_demo.broker", "--port", str(free[0]), *state)
        # Access log without query strings: codes, tickets and states never reach a log.
        gunicorn = [
            python,
            "-m",
            "gunicorn",
            "--workers",
            workers,
            "--access-logfile",
            "-",
            "--access-logformat",
            '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
        ]
        apps = [
            ("Authorization server", "AS_PORT", "authz_server.wsgi:app", env["AS_ISSUER"]),
            ("EHR", "EHR_PORT", "records_server.wsgi:app", env["EHR_URL"]),
            ("Doctor app", "DOCTOR_PORT", "doctor_client.wsgi:app", env["DOCTOR_URL"]),
        ]
        health_urls = {}
        for name, port_name, target, _url in apps:
            process = start(name, *gunicorn, "--bind", f"127.0.0.1:{ports[port_name]}", target)
            health_urls[name] = f"http://127.0.0.1:{ports[port_name]}/healthz"
            problem = wait_healthy(name, health_urls[name], process)
            if problem:
                stop_all()
                return fail(problem)
        start("EHR ingestion", python, "-m", "records_server.ingest", "--broker", env["MQTT_URL"])
        start(
            "BP monitor",
            python,
            "-m",
            "device_sim",
            "--device-id",
            "bp-monitor-001",
            "--patient",
            "alice",
            "--broker",
            env["MQTT_URL"],
            "--interval",
            "5",
            "--quiet",
        )
        print(
            "\numa-health demo is running (demo accounts: password = username)\n"
            f"  Authorization server  {env['AS_ISSUER']}/console/   alice: her sharing console\n"
            f"  EHR                   {env['EHR_URL']}   alice: Protect my records\n"
            f"  Doctor app            {env['DOCTOR_URL']}   bob, carol, dave, erin, mallory\n"
            f"  MQTT broker           {env['MQTT_URL']}   bp-monitor-001 publishes every 5 s\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        problem = watch(processes, health_urls)
        stop_all()
        return fail(problem)
    except KeyboardInterrupt:
        print("\numa-health demo stopped.")
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
