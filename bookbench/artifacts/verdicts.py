"""verdicts.json and verdicts.junit.xml: the judge's verdicts and decision written for CI (display only)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from bookbench.analysis.judge import Judgement, describe

VERDICTS_FORMAT_VERSION = 2


def write(j: Judgement, run_dir: Path) -> None:
    data = {"format_version": VERDICTS_FORMAT_VERSION, "decision": j.decision, "go": j.go, "caveats": j.caveats,
            "verdicts": [asdict(v) for v in j.verdicts]}
    (run_dir / "verdicts.json").write_text(json.dumps(data, indent=1))
    suite = ET.Element("testsuite", name="bookbench verdicts", tests=str(len(j.verdicts)),
                       failures=str(len(j.failures)),
                       skipped=str(sum(v.status in ("not run", "exempt") for v in j.verdicts)))
    for v in j.verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"bookbench.{v.kind}.{v.scenario}", name=v.metric)
        text = f"{describe(v)}: {v.status}"
        if v.failed:
            ET.SubElement(case, "failure", message=text).text = text
        elif v.status in ("not run", "exempt"):
            ET.SubElement(case, "skipped", message=text)
        else:
            ET.SubElement(case, "system-out").text = text
    ET.ElementTree(suite).write(run_dir / "verdicts.junit.xml", encoding="utf-8", xml_declaration=True)
