//! The shipped osquery pack (`packs/an1256.conf`), compiled in so `an1256 scan`
//! runs exactly the query osquery schedules.

use super::CliError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The pack file, as shipped.
pub const PACK_TEXT: &str = include_str!("../../packs/an1256.conf");
/// The Fleet copy of the pack queries.
pub const FLEET_QUERIES_TEXT: &str = include_str!("../../packs/fleet/an1256-queries.yml");

/// The pack's name as osquery config refers to it (`"packs": {"an1256": …}`).
pub const PACK_NAME: &str = "an1256";

/// Name of the hit query in the pack.
pub const HIT_QUERY: &str = "an1256_hits";

/// One scheduled query of the pack.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PackQuery {
    pub query: String,
    pub interval: u64,
    pub platform: String,
    pub version: String,
    pub description: String,
    #[serde(default)]
    pub snapshot: bool,
    #[serde(default)]
    pub removed: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
struct Pack {
    queries: BTreeMap<String, PackQuery>,
}

/// Every query of the pack, by name.
pub fn pack_queries() -> Result<BTreeMap<String, PackQuery>, CliError> {
    serde_json::from_str::<Pack>(PACK_TEXT)
        .map(|p| p.queries)
        .map_err(|e| CliError::PackUnparsable(e.to_string()))
}

/// The `an1256_hits` SQL, as shipped in the pack.
pub fn hit_query() -> Result<String, CliError> {
    pack_queries()?
        .remove(HIT_QUERY)
        .map(|q| q.query)
        .ok_or(CliError::PackQueryMissing(HIT_QUERY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_query_selects_the_hit_context_columns() {
        let sql = hit_query().unwrap();
        let context = crate::judge::severity::hit_context_sql();
        assert!(
            sql.contains(&context),
            "an1256_hits must select first_seen, severity and attack_techniques exactly as \
             severity::hit_context_sql() builds them:\n{context}"
        );
    }

    #[test]
    fn recent_hit_query_scores_like_the_live_one() {
        let queries = pack_queries().unwrap();
        let recent = &queries["an1256_hits_recent"].query;
        let context = crate::judge::severity::recent_hit_context_sql();
        assert!(
            recent.contains(&context),
            "an1256_hits_recent must select severity and attack_techniques exactly as \
             severity::recent_hit_context_sql() builds them:\n{context}"
        );
    }

    /// A differential query's columns must not change while what they report
    /// lives: no column may read the clock. The recent query's window (a WHERE
    /// condition) may, and matches the store's appearance gap.
    #[test]
    fn differential_queries_select_nothing_from_the_clock() {
        for (name, q) in pack_queries().unwrap() {
            if q.snapshot {
                continue;
            }
            let select = q
                .query
                .rsplit_once(" WHERE ")
                .map_or(q.query.as_str(), |(s, _)| s);
            assert!(!select.contains("'now'"), "{name} selects the clock");
        }
        let recent = &pack_queries().unwrap()["an1256_hits_recent"].query;
        let window = format!(
            "o.last_seen >= CAST(strftime('%s', 'now') AS INTEGER) - {};",
            crate::baseline::store::APPEARANCE_GAP_SECS
        );
        assert!(recent.ends_with(&window), "{recent}");
    }

    #[test]
    fn hit_query_is_the_design_join() {
        let sql = hit_query().unwrap();
        for part in [
            "FROM nonstandard_protocol_sockets s",
            "JOIN process_code_signature c ON c.pid = s.pid",
            "LEFT JOIN an1256_baseline b ON b.identity = c.subject_identity AND b.protocol_name = s.protocol_name AND b.remote_port IN (-1, s.remote_port)",
            "WHERE c.subject_trusted = 0 AND b.identity IS NULL",
        ] {
            assert!(sql.contains(part), "{part}");
        }
    }

    #[test]
    fn every_query_is_documented_and_in_the_fleet_file() {
        let queries = pack_queries().unwrap();
        assert_eq!(queries.len(), 5);
        // The Fleet YAML carries each query as a block scalar; compare line by line
        // with indentation removed.
        let fleet: Vec<&str> = FLEET_QUERIES_TEXT
            .lines()
            .map(|l| l.trim().trim_start_matches("- "))
            .collect();
        for (name, q) in &queries {
            assert!(q.interval > 0 && !q.description.is_empty(), "{name}");
            assert_eq!(q.platform, "darwin,linux", "{name}");
            assert!(!q.version.is_empty(), "{name}");
            assert!(
                fleet.contains(&format!("name: {name}").as_str()),
                "{name} missing in fleet"
            );
            assert!(
                fleet.contains(&q.query.as_str()),
                "{name}: fleet SQL differs from the pack"
            );
            assert!(
                fleet.contains(&format!("interval: {}", q.interval).as_str()),
                "{name}: interval"
            );
        }
    }
}
