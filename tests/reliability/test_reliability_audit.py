"""The dependency audit (.ci/audit.py, `make audit`) keeps its three outcomes apart.

pip-audit is replaced by a stub that answers as the advisory services do: everything
checked and clean; a known vulnerability (explained in docs/SECURITY.md or not); every
package "not found" (what an offline mirror answers, and pip-audit then still prints "No
known vulnerabilities found" and exits 0); a connection error with no report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AUDIT = REPO / ".ci" / "audit.py"

STUB = r'''#!{python}
import json, os, sys
args = sys.argv[1:]
service = args[args.index("-s") + 1]
reqs = [ln.split("==") for ln in open(args[args.index("-r") + 1]).read().split() if "==" in ln]
ignored = {args[i + 1] for i, a in enumerate(args) if a == "--ignore-vuln"}
mode = os.environ["STUB_MODE"].split(",")[0 if service == "pypi" else -1]
if mode == "offline":
    sys.stderr.write("requests.exceptions.ConnectionError: cannot reach the service\n")
    sys.exit(1)
deps = []
for name, version in reqs:
    if mode == "skipped":
        deps.append({"name": name, "skip_reason": f"Dependency not found on PyPI: {name} ({version})"})
        continue
    vulns = []
    if mode in ("vuln", "explained") and name.lower() == "numpy":
        vid = "PYSEC-2099-1" if mode == "explained" else "GHSA-aaaa-bbbb-cccc"
        if vid not in ignored:
            vulns.append({"id": vid, "fix_versions": ["99.0"], "description": "x"})
    deps.append({"name": name, "version": version, "vulns": vulns})
open(args[args.index("-o") + 1], "w").write(json.dumps({"dependencies": deps}))
'''


def _run(tmp_path: Path, mode: str, strict: bool = False) -> subprocess.CompletedProcess[str]:
    stub = tmp_path / "pip-audit"
    stub.write_text(STUB.replace("{python}", sys.executable), encoding="utf-8")
    stub.chmod(0o755)
    security = tmp_path / "SECURITY.md"
    security.write_text("# Security\n\n## Explained findings\n\n| PYSEC-2099-1 | numpy | not reachable |\n\n"
                        "## Other\n\nGHSA-aaaa-bbbb-cccc is not explained here.\n", encoding="utf-8")
    env = {**os.environ, "STUB_MODE": mode, "HADANAS_AUDIT_RETRY_DELAY": "0"}
    env.pop("HADANAS_AUDIT_STRICT", None)
    if strict:
        env["HADANAS_AUDIT_STRICT"] = "1"
    return subprocess.run([sys.executable, str(AUDIT), "--python", sys.executable, "--pip-audit", str(stub),
                           "--security", str(security)], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("mode, code, strict_code, says", [
    ("clean", 0, 0, "AUDITED, CLEAN"),
    ("vuln", 1, 1, "VULNERABLE: numpy"),
    ("explained", 0, 0, "1 explained in docs/SECURITY.md"),
    ("skipped", 0, 3, "NOT AUDITED"),              # pip-audit's own exit 0 is not taken as a pass
    ("offline", 0, 3, "NOT AUDITED"),
    ("skipped,clean", 0, 0, "checked against the osv advisory database"),  # PyPI mirror, OSV reachable
    ("offline,vuln", 1, 1, "VULNERABLE"),
])
def test_audit_outcomes(tmp_path: Path, mode: str, code: int, strict_code: int, says: str) -> None:
    proc = _run(tmp_path, mode)
    assert proc.returncode == code, proc.stderr
    out = proc.stdout + proc.stderr
    assert says in out, out
    if "NOT AUDITED" in says:
        assert "CLEAN" not in out and "This is not a pass" in out
    assert _run(tmp_path, mode, strict=True).returncode == strict_code


def test_security_md_ids_are_read() -> None:
    sys.path.insert(0, str(AUDIT.parent))
    import audit

    ids = audit.explained_ids(REPO / "docs" / "SECURITY.md")
    assert isinstance(ids, set)
