#!/usr/bin/env python3
"""Regenerates the Fleet GitOps files in packs/fleet/ from packs/an1256.conf (the
osquery pack is the source of truth for the SQL; a Rust test checks they match, and
tests/fleet_gitops.rs checks every file against the keys Fleet's GitOps parser
accepts):

  an1256-queries.yml   the pack as Fleet reports (a `lib/` file for `reports:`)
  an1256-labels.yml    the label "an1256 extension loaded" every report targets
  an1256-policies.yml  policies: extension loaded; extension healthy (an1256_info)
  fleets/an1256.yml    an example fleet file wiring them together, with the
                       agent options that deploy the extension through fleetd

and, for Elastic's Osquery Manager, ../elastic/an1256-pack.json: the body of Kibana's
create-pack API (POST /api/osquery/packs) with the same queries.

Names follow Fleet's GitOps after the teams -> fleets, queries -> reports rename
(fleetdm/fleet#41423; pkg/spec/gitops_deprecations.go maps `queries` -> `reports`
and `team_settings` -> `settings`, warning on the old names)."""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
pack = json.load(open(os.path.join(here, "..", "an1256.conf")))

LABEL = "an1256 extension loaded"
LOADED_SQL = "SELECT 1 FROM osquery_extensions WHERE name = 'an1256';"
# Healthy: the store opens, the policy file loads, and the sampler (every 15 s in
# extension mode) ran within the last 5 minutes.
HEALTHY_SQL = (
    "SELECT 1 FROM an1256_info WHERE store_error = '' AND policy_error = '' "
    "AND last_sample_time >= CAST(strftime('%s', 'now') AS INTEGER) - 300;"
)
PLATFORM = "darwin,linux"
GENERATED = "# Generated from packs/an1256.conf by packs/fleet/generate.py: do not edit by hand."


def q(text):
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def write(name, lines):
    path = os.path.join(here, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


reports = [
    "# an1256's pack as Fleet reports: a `lib/` file for Fleet GitOps. Reference it from",
    "# default.yml or fleets/<fleet>.yml (see fleets/an1256.yml):",
    "#   reports:",
    "#     - path: ../lib/an1256-queries.yml",
    "# Fleet releases before the teams -> fleets rename spell the key `queries:` and keep",
    "# fleet files under `teams/` (with `team_settings:`); the list below is the same.",
    "# Every report targets the label \"" + LABEL + "\" (an1256-labels.yml):",
    "# hosts without the extension would log `no such table` every minute.",
    "# Hourly snapshot inventories set discard_data: true (Fleet's stored report for a",
    "# query stops at 1,000 rows); they still go to the log destination.",
    GENERATED,
]
for name, query in pack["queries"].items():
    if query.get("snapshot"):
        logging = "snapshot"
    elif query.get("removed") is False:
        logging = "differential_ignore_removals"
    else:
        logging = "differential"
    inventory = logging == "snapshot" and query["interval"] <= 3600
    reports += [
        f"- name: {name}",
        f"  description: {q(query['description'])}",
        "  query: |-",
        f"    {query['query']}",
        f"  platform: {query['platform']}",
        f"  interval: {query['interval']}",
        f"  min_osquery_version: {query['version']}",
        f"  logging: {logging}",
        "  observer_can_run: true",
        "  automations_enabled: true",
        f"  discard_data: {'true' if inventory else 'false'}",
        "  labels_include_any:",
        f"    - {LABEL}",
    ]
write("an1256-queries.yml", reports)

write("an1256-labels.yml", [
    "# The label an1256's reports and health policy target: hosts where osquery has the",
    "# an1256 extension registered. A `lib/` file for `labels:` in default.yml (global) or",
    "# a fleet file (see fleets/an1256.yml).",
    GENERATED,
    f"- name: {LABEL}",
    "  description: \"Hosts whose osquery has the an1256 extension registered (osquery_extensions).\"",
    f"  query: {q(LOADED_SQL)}",
    "  label_membership_type: dynamic",
])

write("an1256-policies.yml", [
    "# Fleet policies for the an1256 extension: a `lib/` file for `policies:`.",
    "# \"loaded\" runs on every macOS and Linux host (it fails where the extension is",
    "# missing); \"healthy\" runs only where it is loaded (the label), since an1256_info",
    "# does not exist elsewhere.",
    GENERATED,
    "- name: an1256 extension loaded",
    "  description: \"osquery has the an1256 extension registered.\"",
    "  resolution: \"Install an1256 (the Debian package or the macOS pkg) and run an1256-setup --fleet, or deploy it as the fleetd extension an1256_linux / an1256_macos (agent_options.extensions); set agent_options.command_line_flags.extensions_require: an1256.\"",
    f"  query: {q(LOADED_SQL)}",
    f"  platform: {PLATFORM}",
    "  critical: false",
    "- name: an1256 extension healthy",
    "  description: \"an1256's baseline store opens, its policy file loads, and its sampler ran in the last 5 minutes (an1256_info).\"",
    "  resolution: \"SELECT * FROM an1256_info on the host: store_error, policy_error and last_sample_error say why.\"",
    f"  query: {q(HEALTHY_SQL)}",
    f"  platform: {PLATFORM}",
    "  critical: false",
    "  labels_include_any:",
    f"    - {LABEL}",
])

write("fleets/an1256.yml", [
    "# An example Fleet GitOps fleet file (fleets/<fleet>.yml; `teams/<team>.yml` with",
    "# `team_settings:` and `queries:` before the teams -> fleets rename). Copy the three",
    "# packs/fleet/an1256-*.yml files into your GitOps repository (usually lib/), point the",
    "# paths below at them (relative to this file), and merge these keys into your fleet",
    "# file (or default.yml, which has org_settings instead of name).",
    GENERATED,
    "name: Workstations",
    "# Merge into your fleet's agent_options (a fleet file's agent_options replace the",
    "# global ones for its hosts).",
    "agent_options:",
    "  # fleetd writes osquery's flags from here: wait for an1256 before the config loads,",
    "  # or the reports are silent for an hour after every osquery start (osquery#4302).",
    "  command_line_flags:",
    "    extensions_require: an1256",
    "    extensions_timeout: 30",
    "  # fleetd downloads extensions/<name> from your TUF server (Fleet Premium), file",
    "  # <name>.ext; one name per platform. Drop this block when the package installs it",
    "  # (an1256-setup --fleet writes /opt/orbit/extensions.load instead).",
    "  extensions:",
    "    an1256_linux:",
    "      channel: stable",
    "      platform: linux",
    "    an1256_macos:",
    "      channel: stable",
    "      platform: macos",
    "labels:",
    "  - path: ../an1256-labels.yml",
    "policies:",
    "  - path: ../an1256-policies.yml",
    "reports:",
    "  - path: ../an1256-queries.yml",
])

# Kibana's create-pack API body (POST /api/osquery/packs). osquerybeat schedules a
# query as a snapshot unless it says otherwise (its Query.Snapshot defaults to true,
# unlike osquery), so every query states snapshot and removed explicitly.
elastic = {
    "name": "an1256",
    "description": "AN1256: unsigned binaries or untrusted scripts opening ICMP, UDP, raw or SOCKS "
    "traffic outside the host baseline. Needs the an1256 osquery extension (elastic_options.extensions).",
    "enabled": True,
    "policy_ids": [],
    "queries": {},
}
for name, query in pack["queries"].items():
    snapshot = bool(query.get("snapshot"))
    entry = {
        "query": query["query"],
        "interval": query["interval"],
        "platform": query["platform"],
        "version": query["version"],
        "snapshot": snapshot,
    }
    if not snapshot:
        entry["removed"] = query.get("removed", True)
    elastic["queries"][name] = entry
os.makedirs(os.path.join(here, "..", "elastic"), exist_ok=True)
with open(os.path.join(here, "..", "elastic", "an1256-pack.json"), "w") as f:
    json.dump(elastic, f, indent=2)
    f.write("\n")
