"""pip-audit over the lock, constraints.txt: the pinned versions against known advisories.

Exit 1 on a known vulnerability in a pinned version, naming the package, the advisory
and the versions that fix it. When the vulnerability service cannot be asked (no
network, or an index that serves packages but not PyPI's JSON API), pip-audit audits
nothing; this says so in one line, and fails only with ``--strict`` (``make audit``):
``make lint`` goes on. Other arguments go to pip-audit, e.g. ``--vulnerability-service osv``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

LOCK = "constraints.txt"


def audit(extra: list[str]) -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report of the lock (None when it gave none) and its last error line."""
    command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--require-hashes"]
    command += ["-r", LOCK, "--progress-spinner", "off", "--format", "json", *extra]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    errors = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    try:
        report: dict[str, Any] = json.loads(run.stdout)
    except ValueError:
        return None, errors[-1] if errors else f"pip-audit exited {run.returncode}"
    return report, errors[-1] if errors else ""


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    report, error = audit([a for a in argv if a != "--strict"])
    level = "error" if strict else "warning"
    if report is None:
        print(f"{level}: pip-audit: {LOCK} NOT audited: {error}", file=sys.stderr)
        return 1 if strict else 0
    packages = report["dependencies"]
    found = [(p, v) for p in packages for v in p.get("vulns", [])]
    for package, vuln in found:
        fixed = ", ".join(vuln.get("fix_versions", [])) or "none yet"
        print(
            f"error: {LOCK}: {package['name']} {package['version']}: {vuln['id']}"
            f" (fixed in: {fixed})",
            file=sys.stderr,
        )
    if found:
        return 1
    skipped = [p for p in packages if "skip_reason" in p]
    if skipped:
        print(
            f"{level}: pip-audit: {len(skipped)} of {len(packages)} packages of {LOCK} NOT"
            f" audited, the vulnerability service did not answer for them"
            f" (first: {skipped[0]['skip_reason']})",
            file=sys.stderr,
        )
        return 1 if strict else 0
    print(f"pip-audit: {len(packages)} packages of {LOCK}, no known vulnerability")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
