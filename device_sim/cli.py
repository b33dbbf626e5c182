"""`python -m device_sim` / `uma-health-device`: run one blood-pressure monitor, or a fleet.

Prints one summary line on exit, after `--count` readings were all acknowledged or on
Ctrl-C / SIGTERM:  `summary: devices=1 sent=5 acknowledged=5 buffered=0 dropped=0`.
"""

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time

from device_sim import wire
from device_sim.publisher import BUFFER_LIMIT, Device, DevicePublisher, Stats
from device_sim.readings import ReadingGenerator

log = logging.getLogger("device_sim")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uma-health-device",
        description="Simulate blood-pressure monitors publishing readings over MQTT.",
    )
    parser.add_argument("--device-id", default="bp-monitor-001", help="(default: %(default)s)")
    parser.add_argument("--patient", default="alice", help="whose monitor (default: %(default)s)")
    parser.add_argument(
        "--broker",
        default=os.environ.get("MQTT_URL") or wire.DEFAULT_BROKER_URL,
        help=f"mqtt://host:port (default: $MQTT_URL, else {wire.DEFAULT_BROKER_URL})",
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=5.0,
        help="seconds between readings (default: %(default)s)",
    )
    parser.add_argument(
        "--count",
        type=_non_negative_int,
        default=0,
        help="readings per device (0: until Ctrl-C); the run ends once all are acknowledged",
    )
    parser.add_argument("--seed", type=int, default=None, help="make the readings repeatable")
    parser.add_argument(
        "--first-seq",
        type=_positive_int,
        default=None,
        help="seq of the first reading (default: the start time in milliseconds, so a "
        "restarted monitor keeps counting up and the EHR never takes a new reading for a "
        "redelivered one)",
    )
    parser.add_argument(
        "--devices", type=_positive_int, default=1, help="fleet size (ids derived from --device-id)"
    )
    parser.add_argument("--model", default=wire.DEFAULT_MODEL, help=argparse.SUPPRESS)
    parser.add_argument("--firmware", default=wire.DEFAULT_FIRMWARE, help=argparse.SUPPRESS)
    parser.add_argument(
        "--buffer-limit",
        type=_positive_int,
        default=BUFFER_LIMIT,
        help="unacknowledged readings kept per device (default: %(default)s)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return parser


def fleet_ids(device_id: str, devices: int) -> list[str]:
    """bp-monitor-001 ×3 → bp-monitor-001, -002, -003; an id without a number gets -001…"""
    if devices == 1:
        return [device_id]
    match = re.fullmatch(r"(.*?)(\d+)", device_id)
    if match:
        prefix, digits = match.groups()
        first, width = int(digits), len(digits)
        return [f"{prefix}{first + i:0{width}d}" for i in range(devices)]
    return [f"{device_id}-{i:03d}" for i in range(1, devices + 1)]


def summary_line(stats: list[Stats]) -> str:
    total = {
        field: sum(getattr(s, field) for s in stats)
        for field in ("sent", "acknowledged", "buffered", "dropped")
    }
    return f"summary: devices={len(stats)} " + " ".join(f"{k}={v}" for k, v in total.items())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        host, port = wire.parse_broker_url(args.broker)
        ids = [wire.check_device_id(i) for i in fleet_ids(args.device_id, args.devices)]
    except ValueError as exc:
        print(f"uma-health-device: error: {exc}", file=sys.stderr)
        return 2

    first_seq = args.first_seq or time.time_ns() // 1_000_000
    publishers = [
        DevicePublisher(
            Device(device_id, args.patient, args.model, args.firmware),
            host,
            port,
            # Distinct but repeatable seeds per device, so a fleet is not N copies of one patient.
            ReadingGenerator(
                seed=None if args.seed is None else args.seed + index, first_seq=first_seq
            ),
            buffer_limit=args.buffer_limit,
        )
        for index, device_id in enumerate(ids)
    ]

    stop = threading.Event()

    def request_stop(signum, frame):
        log.info("%s: finishing", signal.Signals(signum).name)
        stop.set()

    # Both signals end the run the same way: stop measuring, flush briefly, report, exit 0.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    results: dict[str, Stats] = {}

    def run_one(publisher: DevicePublisher) -> None:
        results[publisher.device.device_id] = publisher.run(args.interval, args.count, stop)

    threads = [
        threading.Thread(target=run_one, args=(p,), name=p.device.device_id, daemon=True)
        for p in publishers
    ]
    log.info("%d device(s) → mqtt://%s:%d, every %ss", len(ids), host, port, args.interval)
    for thread in threads:
        thread.start()
    for thread in threads:
        # Join in slices: the main thread must keep returning to Python to run signal handlers.
        while thread.is_alive():
            thread.join(0.2)

    stats = [results[i] for i in ids if i in results]
    if len(stats) > 1:
        for s in stats:
            print(
                f"{s.device_id}: sent={s.sent} acknowledged={s.acknowledged} "
                f"buffered={s.buffered} dropped={s.dropped} connects={s.connects}"
            )
    print(summary_line(stats), flush=True)
    # A device whose thread died (its traceback is on stderr) is missing from the summary.
    return 0 if len(stats) == len(ids) else 1


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be ≥ 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be ≥ 0")
    return value


if __name__ == "__main__":
    sys.exit(main())
