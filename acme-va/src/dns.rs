//! DNS lookups for the validations: A and AAAA of the names connected to, TXT of `dns-01`, CAA.
//!
//! Answers are never cached (each validation asks again), `/etc/hosts` is never read, and
//! every name is asked as an absolute name (no search domains).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ca_acme::{Problem, ProblemType};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

use crate::VaError;

/// A record set's raw CAA records: flags' critical bit, tag, value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawCaa {
    pub(crate) critical: bool,
    pub(crate) tag: String,
    pub(crate) value: Vec<u8>,
}

/// The answer to one question that did not fail.
#[derive(Debug)]
pub(crate) enum Answer<T> {
    /// The records of the asked type (after any CNAME the resolver followed).
    Records(Vec<T>),
    /// NOERROR without a record of that type.
    Empty,
    /// NXDOMAIN: the name does not exist.
    NxDomain,
}

impl<T> Answer<T> {
    fn records(self) -> Vec<T> {
        match self {
            Answer::Records(records) => records,
            Answer::Empty | Answer::NxDomain => Vec::new(),
        }
    }
}

pub(crate) struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// A resolver asking `server` (UDP and TCP) or, when `None`, the servers of
    /// `/etc/resolv.conf`; each query within a third of the validation's `timeout`, twice.
    pub(crate) fn new(server: Option<SocketAddr>, timeout: Duration) -> Result<Self, VaError> {
        let mut builder = match server {
            Some(addr) => {
                let mut name_server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut name_server.connections {
                    connection.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![name_server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => {
                TokioResolver::builder_tokio().map_err(|e| VaError::SystemResolver(Box::new(e)))?
            }
        };
        let options = builder.options_mut();
        options.cache_size = 0;
        options.positive_max_ttl = Some(Duration::ZERO);
        options.negative_max_ttl = Some(Duration::ZERO);
        options.use_hosts_file = ResolveHosts::Never;
        options.timeout = (timeout / 3).max(Duration::from_millis(100));
        options.attempts = 2;
        options.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|e| VaError::Resolver(Box::new(e)))?;
        Ok(Self { resolver })
    }

    /// The records of type `kind` at `name`, or a `dns` problem when the lookup failed.
    async fn lookup(&self, name: &str, kind: RecordType) -> Result<Answer<RData>, Problem> {
        let fqdn = format!("{name}.");
        match self.resolver.lookup(fqdn, kind).await {
            Ok(lookup) => {
                let records: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == kind)
                    .map(|r| r.data.clone())
                    .collect();
                Ok(if records.is_empty() {
                    Answer::Empty
                } else {
                    Answer::Records(records)
                })
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => {
                Ok(if none.response_code == ResponseCode::NXDomain {
                    Answer::NxDomain
                } else {
                    Answer::Empty
                })
            }
            Err(err) => Err(Problem::new(
                ProblemType::Dns,
                format!(
                    "DNS problem: {} looking up {kind} for {name}",
                    failure(&err)
                ),
            )),
        }
    }

    /// The addresses of `name`: its A and AAAA records, asked at once, A first. One of the two
    /// may fail when the other has addresses (as Boulder does); NXDOMAIN or no address at all
    /// is a `dns` problem.
    pub(crate) async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Problem> {
        let (a, aaaa) = tokio::join!(
            self.lookup(name, RecordType::A),
            self.lookup(name, RecordType::AAAA)
        );
        let nxdomain = matches!(a, Ok(Answer::NxDomain)) || matches!(aaaa, Ok(Answer::NxDomain));
        let mut addresses = Vec::new();
        let mut failure = None;
        for answer in [a, aaaa] {
            match answer {
                Ok(answer) => {
                    addresses.extend(answer.records().into_iter().filter_map(|data| match data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                        _ => None,
                    }))
                }
                Err(problem) => failure = failure.or(Some(problem)),
            }
        }
        if !addresses.is_empty() {
            return Ok(addresses);
        }
        if let Some(problem) = failure {
            return Err(problem);
        }
        Err(Problem::new(
            ProblemType::Dns,
            if nxdomain {
                format!(
                    "DNS problem: NXDOMAIN looking up A for {name} - check that a DNS record \
                     exists for this domain"
                )
            } else {
                format!("DNS problem: no valid A or AAAA records found for {name}")
            },
        ))
    }

    /// The TXT records at `name`, each one's strings joined.
    pub(crate) async fn txt(&self, name: &str) -> Result<Answer<String>, Problem> {
        Ok(match self.lookup(name, RecordType::TXT).await? {
            Answer::Records(records) => Answer::Records(
                records
                    .into_iter()
                    .filter_map(|data| match data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|s| String::from_utf8_lossy(s))
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect(),
            ),
            Answer::Empty => Answer::Empty,
            Answer::NxDomain => Answer::NxDomain,
        })
    }

    /// The CAA record set at `name` (empty when there is none or the name does not exist).
    pub(crate) async fn caa(&self, name: &str) -> Result<Vec<RawCaa>, Problem> {
        Ok(self
            .lookup(name, RecordType::CAA)
            .await?
            .records()
            .into_iter()
            .filter_map(|data| match data {
                RData::CAA(caa) => Some(RawCaa {
                    critical: caa.issuer_critical,
                    tag: caa.tag.clone(),
                    value: caa.value.clone(),
                }),
                _ => None,
            })
            .collect())
    }
}

/// What went wrong, the way Boulder words it: the response code's name, or a timeout.
fn failure(err: &NetError) -> String {
    match err {
        NetError::Dns(DnsError::ResponseCode(code)) => match code {
            ResponseCode::ServFail => "SERVFAIL".into(),
            ResponseCode::Refused => "REFUSED".into(),
            ResponseCode::FormErr => "FORMERR".into(),
            ResponseCode::NotImp => "NOTIMP".into(),
            other => format!("response code {} ({other})", u16::from(*other)),
        },
        NetError::Timeout => "query timed out".into(),
        other => format!("networking error ({other})"),
    }
}
