#!/usr/bin/env python3
"""Regenerates packs/fleet/an1256-queries.yml from packs/an1256.conf (the osquery
pack is the source of truth; a Rust test checks the two carry the same SQL)."""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
pack = json.load(open(os.path.join(here, "..", "an1256.conf")))
out = [
    "# an1256 queries for Fleet GitOps (a `lib/` queries file): reference it from",
    "# default.yml or teams/<team>.yml with",
    "#   queries:",
    "#     - path: ../lib/an1256-queries.yml",
    "# Format checked against fleetdm/fleet docs/Configuration/yaml-files.md (\"queries\",",
    "# separate-file form; options = the Create query API parameters), Fleet 4.x GitOps.",
    "# Generated from packs/an1256.conf by packs/fleet/generate.py: do not edit by hand.",
    "# The an1256 extension must be loaded on the hosts (agent_options / extensions.load).",
]
for name, q in pack["queries"].items():
    if q.get("snapshot"):
        logging = "snapshot"
    elif q.get("removed") is False:
        logging = "differential_ignore_removals"
    else:
        logging = "differential"
    out += [
        f"- name: {name}",
        f"  description: {json.dumps(q['description'])}",
        "  query: |-",
        f"    {q['query']}",
        f"  platform: {q['platform']}",
        f"  interval: {q['interval']}",
        f"  min_osquery_version: {q['version']}",
        f"  logging: {logging}",
        "  observer_can_run: true",
        "  automations_enabled: true",
    ]
with open(os.path.join(here, "an1256-queries.yml"), "w") as f:
    f.write("\n".join(out) + "\n")
