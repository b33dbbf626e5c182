"""``uma-health``: commands around the demo. ``uma-health scenario surgery|device|stranger|
revoke|all`` runs the demo's stories against a running demo (``make demo``) over HTTP."""

import argparse
import os
import sys

from .scenario import DEFAULT_TIMEOUT, ORDER, Scene, run


def _default_url(variable: str, port_variable: str, port: int) -> str:
    """The demo's own address for an app: the launcher's variables, else its defaults."""
    return os.environ.get(variable) or f"http://localhost:{os.environ.get(port_variable, port)}"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="uma-health", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    scenario = commands.add_parser(
        "scenario",
        help="run the demo's stories against a running demo and check every step",
        description="Run the demo's stories over HTTP, as people would click them, and print "
        "each step and the UMA protocol steps behind it. Exit status: 0 when every step went "
        "as the story says, 1 when one did not, 2 when the demo does not answer.",
    )
    scenario.add_argument("story", choices=[*ORDER, "all"], help="which story (all: in order)")
    scenario.add_argument(
        "--as-url",
        default=_default_url("AS_ISSUER", "AS_PORT", 8400),
        help="the authorization server's issuer (default: $AS_ISSUER or %(default)s)",
    )
    scenario.add_argument(
        "--ehr-url",
        default=_default_url("EHR_URL", "EHR_PORT", 8401),
        help="the EHR (default: $EHR_URL or %(default)s)",
    )
    scenario.add_argument(
        "--doctor-url",
        default=_default_url("DOCTOR_URL", "DOCTOR_PORT", 8402),
        help="the doctor app (default: $DOCTOR_URL or %(default)s)",
    )
    scenario.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for the monitor, a waiting page or a revocation "
        "(default: %(default)s)",
    )
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "scenario":
        names = list(ORDER) if args.story == "all" else [args.story]
        scene = Scene(args.as_url, args.ehr_url, args.doctor_url, args.timeout)
        return run(names, scene)
    return 2


if __name__ == "__main__":
    sys.exit(main())
