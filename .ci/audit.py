#!/usr/bin/env python3
"""Audit the installed dependencies of the project's environment with pip-audit.

Three outcomes, never confused with each other (see docs/SECURITY.md):

* AUDITED, CLEAN     every installed package was checked against an advisory database and
                     none has a known vulnerability that docs/SECURITY.md does not explain -> exit 0;
* VULNERABLE         a package has an advisory not explained in docs/SECURITY.md -> exit 1;
* NOT AUDITED        no advisory service (PyPI JSON API, then OSV) could check every package,
                     after retries: printed as such, never as a pass; exit 0 by default so a
                     network outage does not fail CI, exit 3 with HADANAS_AUDIT_STRICT=1.

pip-audit itself reports "No known vulnerabilities found" with exit 0 when the service
answers "not found" for every package (an offline mirror does that), so the JSON report is
read and a package with a ``skip_reason`` counts as not audited.

Usage: audit.py --python VENV/bin/python --pip-audit TOOL [--security docs/SECURITY.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = ("pypi", "osv")
ATTEMPTS = 3
ID = re.compile(r"\b(?:PYSEC-\d{4}-\d+|GHSA(?:-[0-9a-z]{4}){3}|CVE-\d{4}-\d+)\b")


def explained_ids(security_md: Path) -> set[str]:
    """Advisory ids listed under '## Explained findings' in docs/SECURITY.md."""
    if not security_md.is_file():
        return set()
    text = security_md.read_text(encoding="utf-8")
    _, _, section = text.partition("## Explained findings")
    section = section.split("\n## ", 1)[0]
    return set(ID.findall(section))


def frozen_requirements(python: str) -> list[str]:
    out = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines()
            if ln.strip() and "==" in ln and not ln.lower().startswith("hadanas==")]


def run_service(tool: str, service: str, reqs: Path, ignore: set[str]) -> tuple[dict | None, str]:
    """(report, why) -- report is None when pip-audit produced none (e.g. connection error)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "audit.json")
        cmd = [tool, "-s", service, "--no-deps", "--disable-pip", "-r", str(reqs), "-f", "json",
               "-o", str(out), "--progress-spinner", "off"]
        for vid in sorted(ignore):
            cmd += ["--ignore-vuln", vid]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if not out.is_file():
            last = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            return None, (last[-1] if last else f"exit {proc.returncode}")[:300]
        try:
            return json.loads(out.read_text(encoding="utf-8")), ""
        except ValueError as exc:
            return None, f"unreadable report: {exc}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", required=True, help="python of the environment to audit")
    ap.add_argument("--pip-audit", required=True, help="the pip-audit executable")
    ap.add_argument("--security", default=str(Path(__file__).resolve().parents[1] / "docs" / "SECURITY.md"))
    args = ap.parse_args(argv)
    strict = os.environ.get("HADANAS_AUDIT_STRICT") == "1"
    ignore = explained_ids(Path(args.security))
    reqs_list = frozen_requirements(args.python)

    def not_audited(why: str) -> int:
        print(f"pip-audit: NOT AUDITED: {why}. This is not a pass: run 'make audit' where "
              "the advisory database is reachable" + (" (HADANAS_AUDIT_STRICT=1: failing)." if strict else "."),
              file=sys.stderr)
        return 3 if strict else 0

    if not Path(args.pip_audit).exists():
        return not_audited(f"pip-audit is not installed at {args.pip_audit}")
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp, "requirements.txt")
        reqs.write_text("\n".join(reqs_list) + "\n", encoding="utf-8")
        reasons = []
        for service in SERVICES:
            for attempt in range(ATTEMPTS):
                report, why = run_service(args.pip_audit, service, reqs, ignore)
                if report is not None:
                    break
                if attempt < ATTEMPTS - 1:
                    time.sleep(float(os.environ.get("HADANAS_AUDIT_RETRY_DELAY", "2")) * (attempt + 1))
            if report is None:
                reasons.append(f"{service}: {why}")
                continue
            deps = report.get("dependencies", [])
            vulnerable = [(d["name"], d.get("version"), v["id"], v.get("fix_versions") or [])
                          for d in deps for v in d.get("vulns", []) if v.get("id") not in ignore]
            if vulnerable:  # a finding is a finding even if other packages were skipped
                for name, version, vid, fixes in vulnerable:
                    print(f"pip-audit: VULNERABLE: {name} {version}: {vid}"
                          + (f" (fixed in {', '.join(fixes)})" if fixes else " (no fix released)")
                          + "; pin a fixed version or explain it in docs/SECURITY.md", file=sys.stderr)
                return 1
            skipped = [d["name"] for d in deps if "skip_reason" in d]
            if not skipped and len(deps) >= len(reqs_list):
                print(f"pip-audit: AUDITED, CLEAN: {len(deps)} installed packages checked against "
                      f"the {service} advisory database; no unexplained known vulnerability"
                      + (f" ({len(ignore)} explained in docs/SECURITY.md)." if ignore else "."))
                return 0
            reasons.append(f"{service}: {len(skipped)} of {len(deps)} packages could not be checked "
                           f"(e.g. {skipped[0] if skipped else '?'}: "
                           f"{next((d['skip_reason'] for d in deps if 'skip_reason' in d), 'missing')[:120]})")
        return not_audited("no advisory service could check every package (" + "; ".join(reasons) + ")")


if __name__ == "__main__":
    sys.exit(main())
