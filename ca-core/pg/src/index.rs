//! The auditor's certificate queries on PostgreSQL: ca-core's query logic
//! ([`ca_core::store::query::query_page`]) walking the tables that hold its indexes, a page of
//! rows per round trip, with keys laid out as the embedded store's (so cursors mean the same on
//! every store and every node).

use ca_core::store::cf;
use ca_core::store::query::{IndexIter, Indexed};
use ca_core::CaError;
use tokio_postgres::types::ToSql;

use crate::{col, PgStore};

/// Index entries fetched per round trip.
const PAGE: i64 = 256;

/// The statements that read a page of an index from a key: at or after it (`seek`), or after
/// it (the next page). Keys and values as in the embedded store's column families.
fn statements(family: &'static str) -> Result<[&'static str; 2], CaError> {
    Ok(match family {
        cf::ISSUED => [
            "SELECT seq, record FROM certificates WHERE seq >= $1 ORDER BY seq LIMIT $2",
            "SELECT seq, record FROM certificates WHERE seq > $1 ORDER BY seq LIMIT $2",
        ],
        cf::NAMES => [
            "SELECT key, ''::bytea FROM names WHERE key >= $1 ORDER BY key LIMIT $2",
            "SELECT key, ''::bytea FROM names WHERE key > $1 ORDER BY key LIMIT $2",
        ],
        cf::REVOKED => [
            "SELECT serial, record FROM revocations WHERE serial >= $1 ORDER BY serial LIMIT $2",
            "SELECT serial, record FROM revocations WHERE serial > $1 ORDER BY serial LIMIT $2",
        ],
        cf::BY_EXPIRY => [
            "SELECT not_after, serial FROM certificates WHERE (not_after, serial) >= ($1, $3) \
             ORDER BY not_after, serial LIMIT $2",
            "SELECT not_after, serial FROM certificates WHERE (not_after, serial) > ($1, $3) \
             ORDER BY not_after, serial LIMIT $2",
        ],
        other => {
            return Err(CaError::Storage(format!(
                "no index {other} in the PostgreSQL store"
            )))
        }
    })
}

/// Index entries: key and value.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A walk over one index table.
struct PgIndex<'a> {
    store: &'a PgStore,
    family: &'static str,
    /// The page being walked, and the position in it.
    page: Entries,
    at: usize,
    /// Whether the page was full (more may follow it).
    full: bool,
    failed: Option<CaError>,
}

impl PgIndex<'_> {
    /// Loads the page that starts at `key` (inclusive) or after it.
    fn load(&mut self, key: &[u8], inclusive: bool) {
        self.page.clear();
        self.at = 0;
        self.full = false;
        match self.fetch(key, inclusive) {
            Ok(page) => {
                self.full = page.len() as i64 == PAGE;
                self.page = page;
            }
            Err(e) => self.failed = Some(e),
        }
    }

    fn fetch(&self, key: &[u8], inclusive: bool) -> Result<Entries, CaError> {
        let [at_or_after, after] = statements(self.family)?;
        let sql = if inclusive { at_or_after } else { after };
        let mut params: Vec<Box<dyn ToSql + Send + Sync>> = Vec::new();
        match self.family {
            cf::ISSUED => params.push(Box::new(be_i64(key, 0))),
            cf::BY_EXPIRY => params.push(Box::new(be_i64(key, i64::MIN))),
            _ => params.push(Box::new(key.to_vec())),
        }
        params.push(Box::new(PAGE));
        if self.family == cf::BY_EXPIRY {
            params.push(Box::new(key.get(8..).unwrap_or_default().to_vec()));
        }
        let rows = self.store.rows(sql, params)?;
        rows.iter()
            .map(|r| {
                Ok(match self.family {
                    cf::ISSUED => (col::<i64, _>(r, 0)?.to_be_bytes().to_vec(), col(r, 1)?),
                    cf::BY_EXPIRY => {
                        let mut key = col::<i64, _>(r, 0)?.to_be_bytes().to_vec();
                        key.extend_from_slice(col::<&[u8], _>(r, 1)?);
                        (key, Vec::new())
                    }
                    _ => (col(r, 0)?, col(r, 1)?),
                })
            })
            .collect()
    }
}

/// The big-endian integer at the start of `key`; `empty` for a key too short to hold one (the
/// start of the index).
fn be_i64(key: &[u8], empty: i64) -> i64 {
    key.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(empty, i64::from_be_bytes)
}

impl IndexIter for PgIndex<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.load(key, true);
    }
    fn key(&self) -> Option<&[u8]> {
        self.page.get(self.at).map(|(k, _)| k.as_slice())
    }
    fn value(&self) -> Option<&[u8]> {
        self.page.get(self.at).map(|(_, v)| v.as_slice())
    }
    fn next(&mut self) {
        self.at += 1;
        if self.at == self.page.len() && self.full {
            if let Some((last, _)) = self.page.last() {
                let last = last.clone();
                self.load(&last, false);
            }
        }
    }
    fn status(&self) -> Result<(), CaError> {
        match &self.failed {
            Some(e) => Err(e.for_group()),
            None => Ok(()),
        }
    }
}

impl Indexed for PgStore {
    fn index(&self, family: &'static str) -> Result<Box<dyn IndexIter + '_>, CaError> {
        statements(family)?;
        Ok(Box::new(PgIndex {
            store: self,
            family,
            page: Vec::new(),
            at: 0,
            full: false,
            failed: None,
        }))
    }
}
