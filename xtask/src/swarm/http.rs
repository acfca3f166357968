//! HTTP requests from the test's client, made with curl: what a user would type.
use std::collections::BTreeMap;

use anyhow::{Context as _, bail};

use super::{cluster::Cluster, docker::quiet};

/// One response: status, header lines and body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header block as received (`curl -i`).
    pub head: String,
    /// The body.
    pub body: String,
}

/// `curl -i URL` with a short timeout, plus `extra` options (headers...).
pub fn get(cluster: &dyn Cluster, url: &str, extra: &[&str]) -> anyhow::Result<Response> {
    let mut cmd = cluster.curl();
    cmd.args(["-sS", "-i", "-m", "10"]).args(extra).arg(url);
    let out = quiet(&mut cmd)?;
    parse(&out).with_context(|| format!("curl -i {url} printed {out:?}"))
}

fn parse(out: &str) -> anyhow::Result<Response> {
    let (head, body) = out.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    Ok(Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// Sends `count` requests to `url` (curl's URL globbing, one keep-alive connection) and counts
/// the answers by body line: `/demo/who` answers with the replica's name. Fails on any status
/// other than 200.
pub fn count_answers(
    cluster: &dyn Cluster,
    url: &str,
    count: usize,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut cmd = cluster.curl();
    cmd.args(["-sS", "-m", "120", "-w", "%{http_code}\\n"])
        .arg(format!("{url}?[1-{count}]"));
    let out = quiet(&mut cmd)?;
    tally(&out, count)
}

/// Pairs of lines: the body (one line) and the status curl's `-w` appended.
fn tally(out: &str, count: usize) -> anyhow::Result<BTreeMap<String, usize>> {
    let lines: Vec<&str> = out.lines().collect();
    let mut counts = BTreeMap::new();
    for pair in lines.chunks(2) {
        match pair {
            [body, "200"] => *counts.entry((*body).to_owned()).or_default() += 1,
            [body, status] => bail!("a request got {status}: {body}"),
            _ => bail!("curl's output ends with a body without status: {pair:?}"),
        }
    }
    let answered: usize = counts.values().sum();
    if answered != count {
        bail!("{answered} of {count} requests answered");
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_per_replica() {
        let counts = tally("a\n200\nb\n200\na\n200\n", 3).unwrap();
        assert_eq!(counts["a"], 2);
        assert_eq!(counts["b"], 1);
        assert!(tally("a\n200\nno route\n404\n", 2).is_err());
        assert!(tally("a\n200\n", 2).is_err());
    }

    #[test]
    fn responses_are_split() {
        let r = parse("HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\nhello, world!\n").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "hello, world!\n");
        assert!(r.head.contains("content-length"));
    }
}
