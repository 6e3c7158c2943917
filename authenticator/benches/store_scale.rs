//! Scale of the file credential store: 100,000 discoverable credentials in ONE relying party
//! (the harder case: one directory of 100,000 files) against 10.
//!
//! Targets: `open` with 100k credentials < 1 s; a `get` of a random credential with 100k
//! stored within 2x of the same with 10 stored; process RSS < 64 MiB.
//!
//! The 100k store is populated by a child process (this binary, re-run with
//! `STORE_SCALE_POPULATE=<dir>`), so the measuring process's RSS holds only what `open` and the
//! lookups need. `get` is measured twice per store: "cold" (the in-memory record cache cleared
//! before each lookup: path computation, one file read, decryption, decoding) and "warm" (the
//! store as it runs, with its bounded record cache).
//!
//! `cargo bench -p passgate-authenticator --bench store_scale`; the `store_scale:` lines sum up.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // Benchmark harness code.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use passgate_authenticator::api::credential_store::CredentialStore;
use passgate_authenticator::software::{DeviceKey, FileCredentialStore, SoftwareKeyStore};

const RP: &str = "scale.example";
const LARGE: usize = 100_000;
const SMALL: usize = 10;
const ID_LEN: usize = 16;
const POPULATE_ENV: &str = "STORE_SCALE_POPULATE";

fn populate(state: &Path, count: usize) -> Vec<Vec<u8>> {
    let device_key = DeviceKey::load_or_create(state).expect("device key");
    let mut keys = SoftwareKeyStore::new(&device_key);
    FileCredentialStore::populate_for_benchmark(state, &device_key, &mut keys, RP, count)
        .expect("populate")
}

/// Child mode: fill `dir/state` and write the IDs to `dir/ids`.
fn populate_child(dir: &Path) {
    let ids = populate(&dir.join("state"), LARGE);
    assert!(ids.iter().all(|id| id.len() == ID_LEN));
    std::fs::write(dir.join("ids"), ids.concat()).expect("ids");
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Deterministic spread over the IDs (no RNG needed, no locality).
fn pick(ids: &[Vec<u8>], i: &mut usize) -> usize {
    *i = (*i + 7919) % ids.len();
    *i
}

fn lookups(c: &mut Criterion, label: &str, store: &mut FileCredentialStore, ids: &[Vec<u8>]) {
    let mut i = 0;
    c.bench_function(&format!("store_get_cold_{label}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let id = &ids[pick(ids, &mut i)];
                store.clear_record_cache();
                let start = Instant::now();
                let found = store.get(RP, black_box(id)).expect("get");
                total += start.elapsed();
                assert!(found.is_some());
            }
            total
        })
    });
    let mut j = 0;
    c.bench_function(&format!("store_get_warm_{label}"), |b| {
        b.iter(|| {
            let id = &ids[pick(ids, &mut j)];
            let found = store.get(RP, black_box(id)).expect("get");
            assert!(found.is_some());
            found
        })
    });
}

fn main() {
    if let Some(dir) = std::env::var_os(POPULATE_ENV) {
        populate_child(Path::new(&dir));
        return;
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let rss_start = proc_status_kib("VmRSS:");

    // 10 credentials.
    let small = tempfile::tempdir().expect("tempdir");
    let small_ids = populate(small.path(), SMALL);
    let small_key = DeviceKey::load_or_create(small.path()).expect("device key");
    let mut small_store = FileCredentialStore::open(small.path(), &small_key, LARGE).expect("open");

    // 100,000 credentials in one RP, written by a child process.
    let large = tempfile::tempdir().expect("tempdir");
    let populated = Instant::now();
    let status = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env(POPULATE_ENV, large.path())
        .status()
        .expect("populate child");
    assert!(status.success());
    let populate_time = populated.elapsed();
    let large_ids: Vec<Vec<u8>> = std::fs::read(large.path().join("ids"))
        .expect("ids")
        .chunks(ID_LEN)
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(large_ids.len(), LARGE);
    let state = large.path().join("state");
    let large_key = DeviceKey::load_or_create(&state).expect("device key");

    // open: the first (page cache warm from the populate, as after any recent use) and
    // criterion's repeated opens.
    let rss_before_open = proc_status_kib("VmRSS:");
    let opened = Instant::now();
    let mut large_store = FileCredentialStore::open(&state, &large_key, LARGE).expect("open");
    let first_open = opened.elapsed();
    assert_eq!(large_store.discoverable_count().expect("count"), LARGE);
    let rss_after_open = proc_status_kib("VmRSS:");
    // Each open walks 100k directory entries (counters are per credential: nothing is written).
    let mut group = c.benchmark_group("store_open");
    group.sample_size(10);
    group.bench_function("store_open_100k_one_rp", |b| {
        b.iter(|| FileCredentialStore::open(&state, &large_key, LARGE).expect("open"))
    });
    group.finish();

    lookups(&mut c, "10", &mut small_store, &small_ids);
    lookups(&mut c, "100k_one_rp", &mut large_store, &large_ids);

    // Every credential once: the record cache stays bounded.
    for id in &large_ids {
        assert!(large_store.get(RP, id).expect("get").is_some());
    }
    let rss_end = proc_status_kib("VmRSS:");
    let hwm = proc_status_kib("VmHWM:");
    c.final_summary();
    println!(
        "store_scale: populate {LARGE} (child process, no fsync per credential) {:.1} s; \
         first open {:.1} ms",
        populate_time.as_secs_f64(),
        first_open.as_secs_f64() * 1000.0
    );
    println!(
        "store_scale: RSS KiB: start {rss_start}, before open {rss_before_open}, after open \
         {rss_after_open}, after all lookups {rss_end}; peak (VmHWM) {hwm}"
    );
}
