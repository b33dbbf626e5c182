"""`make screenshots`: run the browser tests, then copy the pictures README.md shows into
docs/screenshots/.

    .venv/bin/python docs/update_screenshots.py            # run tests/browser, then copy
    .venv/bin/python docs/update_screenshots.py --no-run   # copy what test-artifacts/ holds

The browser tests save a full-page PNG of each key page to test-artifacts/ (`shot()` in
tests/browser/conftest.py). A copy over MAX_BYTES is downscaled with Pillow when Pillow is
installed, and kept as it is otherwise.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
TARGET = ROOT / "docs" / "screenshots"
MAX_BYTES = 250_000

# The walkthrough's pictures, in the order of README.md's "The story".
NAMES = [
    "03-as-consent-uma-protection.png",
    "04-console-my-resources.png",
    "05-doctor-carol-reads-history.png",
    "05b-doctor-how-did-i-get-this.png",
    "06-doctor-erin-reads-prescriptions.png",
    "07-console-pending-request.png",
    "08-doctor-mallory-denied.png",
    "09-doctor-bob-waiting.png",
    "10-doctor-bob-labs-after-approval.png",
    "11-doctor-bob-note-added.png",
    "14-console-revoked.png",
    "15-doctor-bob-refused-after-revoke.png",
]


def downscale(path: Path) -> None:
    """Shrink a PNG by a quarter at a time until it fits MAX_BYTES (Pillow only)."""
    try:
        from PIL import Image
    except ImportError:
        return
    image = Image.open(path)
    image.load()
    while path.stat().st_size > MAX_BYTES and image.width > 400:
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
        image.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="only copy test-artifacts/")
    args = parser.parse_args(argv)
    if not args.no_run:
        tests = [sys.executable, "-m", "pytest", "-q", "tests/browser", "-p", "no:cacheprovider"]
        if subprocess.run(tests, cwd=ROOT).returncode != 0:
            print("screenshots: the browser tests failed; nothing copied", file=sys.stderr)
            return 1
    missing = [name for name in NAMES if not (ARTIFACTS / name).exists()]
    if missing:
        print(f"screenshots: not in test-artifacts/: {', '.join(missing)}", file=sys.stderr)
        return 1
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        copy = TARGET / name
        shutil.copyfile(ARTIFACTS / name, copy)
        if copy.stat().st_size > MAX_BYTES:
            downscale(copy)
        print(f"{copy.relative_to(ROOT)}  {copy.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
