//! Load-balancer rows: round robin, least request, random, consistent hashing on a header, a
//! cookie and the source IP, and locality weights. The services share three upstreams
//! (`pool-a`, `pool-b`, `pool-c`), told apart by the name they answer with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::dataplane::DataPlane;
use crate::matrix::{Mesh, Outcome, share};

pub const POOL: [&str; 3] = ["pool-a", "pool-b", "pool-c"];

fn spread(counts: &BTreeMap<(u16, String), usize>) -> Vec<f64> {
    POOL.iter().map(|name| share(counts, 200, name)).collect()
}

fn percents(shares: &[f64]) -> String {
    shares
        .iter()
        .map(|s| format!("{s:.0}%"))
        .collect::<Vec<_>>()
        .join("/")
}

/// ROUND_ROBIN over three hosts: each gets a third (±5 points) of 300 requests.
pub async fn round_robin(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let shares = spread(&mesh.tally(plane, 300, "lb-rr", "/", &[]).await);
    let pass = shares.iter().all(|s| (s - 100.0 / 3.0).abs() <= 5.0);
    Outcome::new(pass, format!("a/b/c {}", percents(&shares)))
}

/// RANDOM over three hosts: every host is hit (≥15% each of 300) and all succeed.
pub async fn random(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let shares = spread(&mesh.tally(plane, 300, "lb-random", "/", &[]).await);
    let pass = shares.iter().all(|s| *s >= 15.0) && shares.iter().sum::<f64>() > 99.9;
    Outcome::new(pass, format!("a/b/c {}", percents(&shares)))
}

/// LEAST_REQUEST with one host answering after 150 ms: eight clients sending back to back
/// for 2 s get most answers (≥60%) from the idle host, where round robin gives exactly 50%.
/// Eight clients keep the slow host busy, so ties between two idle hosts are rare.
/// Envoy draws its two candidates with replacement, so it still picks the slow host when
/// both draws land on it (about a quarter of picks: ~75% idle); lateen-proxy draws two
/// different hosts.
pub async fn least_request(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let slow = mesh.backend("lr-slow");
    slow.set_delay(Duration::from_millis(150));
    let until = Instant::now() + Duration::from_secs(2);
    let target = mesh.plane(plane).egress;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                let mut bodies = Vec::new();
                while Instant::now() < until {
                    let request = crate::common::client::Request {
                        target,
                        source: None,
                        host: "lb-lr",
                        path: "/",
                        headers: &[],
                    };
                    let got = crate::common::client::fetch(&request).await;
                    bodies.push(got.map_or(String::new(), |r| r.body));
                }
                bodies
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for worker in workers {
        bodies.extend(worker.await.unwrap_or_default());
    }
    slow.set_delay(Duration::ZERO);
    let fast = bodies.iter().filter(|b| *b == "lr-fast").count();
    let slowed = bodies.iter().filter(|b| *b == "lr-slow").count();
    let fast_share = 100.0 * fast as f64 / bodies.len().max(1) as f64;
    let pass = fast + slowed == bodies.len() && fast_share >= 60.0;
    Outcome::new(
        pass,
        format!("idle host {fast_share:.0}% of {}", bodies.len()),
    )
}

/// Sends `per_key` requests for each of 12 keys; passes when each key always lands on one
/// host and the keys spread over at least two hosts.
async fn consistent<F, Fut>(per_key: usize, mut send: F) -> Outcome
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let mut hosts_by_key: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for key in 0..12 {
        for _ in 0..per_key {
            let host = send(key).await.unwrap_or_else(|| "failed".to_string());
            hosts_by_key.entry(key).or_default().insert(host);
        }
    }
    let sticky = hosts_by_key.values().filter(|h| h.len() == 1).count();
    let used: BTreeSet<&String> = hosts_by_key.values().flatten().collect();
    let pass = sticky == 12 && used.len() >= 2 && !used.iter().any(|h| *h == "failed");
    Outcome::new(
        pass,
        format!("{sticky}/12 keys sticky, {} hosts used", used.len()),
    )
}

fn body_of_200(reply: Option<crate::common::client::Reply>) -> Option<String> {
    reply.filter(|r| r.status == 200).map(|r| r.body)
}

/// consistentHash on the `x-user` header.
pub async fn hash_header(mesh: &Mesh, plane: DataPlane) -> Outcome {
    consistent(4, |key| async move {
        let user = format!("user-{key}");
        body_of_200(
            mesh.send(plane, "hash-header", "/", &[("x-user", &user)])
                .await,
        )
    })
    .await
}

/// consistentHash on the `session` cookie.
pub async fn hash_cookie(mesh: &Mesh, plane: DataPlane) -> Outcome {
    consistent(4, |key| async move {
        let cookie = format!("session=s-{key}; other=x");
        body_of_200(
            mesh.send(plane, "hash-cookie", "/", &[("cookie", &cookie)])
                .await,
        )
    })
    .await
}

/// consistentHash on the source IP: each key is a client address 127.0.77.N.
pub async fn hash_source_ip(mesh: &Mesh, plane: DataPlane) -> Outcome {
    consistent(4, |key| async move {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 77, key as u8 + 1));
        body_of_200(
            mesh.send_from(plane, Some(source), "hash-ip", "/", &[])
                .await,
        )
    })
    .await
}

/// localityLbSetting distribute 20% to region-a/zone-a (pool-a, pool-b) and 80% to
/// region-b/zone-b (pool-c) over 500 requests (±6 points); flattened endpoints would give a
/// third each.
pub async fn locality_weights(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let shares = spread(&mesh.tally(plane, 500, "locality", "/", &[]).await);
    let zone_a = shares[0] + shares[1];
    let pass = (shares[2] - 80.0).abs() <= 6.0 && (zone_a - 20.0).abs() <= 6.0;
    Outcome::new(
        pass,
        format!("zone-a {zone_a:.0}% / zone-b {:.0}%", shares[2]),
    )
}
