//! The TPM 2.0 key store on swtpm, same run: one bare `TPM2_Sign` of a loaded key (the peer),
//! the key store's signature and hmac-secret, a whole getAssertion with user verification with
//! and without hmac-secret; and the TPM commands of each, recorded on the bus. Without
//! `--features tpm` it measures nothing.
//!
//! `cargo bench -p passgate-authenticator --bench tpm --features tpm`; `cargo xtask bench`
//! prints the ratios, the command counts and a modelled discrete-TPM latency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // Benchmark harness code.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

#[cfg(feature = "tpm")]
mod swtpm_benches {
    use std::hint::black_box;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use criterion::Criterion;
    use passgate_authenticator::api::key_store::{KeyAlgorithm, KeyStore};

    use crate::common::{hmac_secret_requests, verifying_authenticator};

    pub fn key_stores(c: &mut Criterion) {
        let message = [7u8; 69];
        let state = tempfile::tempdir().expect("tempdir");
        let port = loop {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = probe.local_addr().expect("addr").port();
            if port < 65000 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break port;
            }
        };
        let mut swtpm = std::process::Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.path().display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
            ])
            .args(["--flags", "not-need-init,startup-clear"])
            .spawn()
            .expect("swtpm");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let tcti = format!("swtpm:host=127.0.0.1,port={port}");
        tpm_command_counts(port);
        // Which tpm2-tss this run measures (`cargo xtask bench` can point LD_LIBRARY_PATH at
        // another build): the libtss2-esys mapped into this process, by its real file name.
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        let esys = maps
            .lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .find(|path| path.contains("libtss2-esys"))
            .expect("libtss2-esys mapped");
        println!("tss2-esys loaded: {esys}");
        tpm_bare_sign(c, &tcti);
        tpm_round_trips(c, &tcti);
        let mut tpm = passgate_authenticator::tpm::TpmKeyStore::open(&tcti).expect("tpm");
        // No PIN set: the release is the store's open one. Each signature decrypts the key's
        // authorization value, loads the key and signs with that authorization.
        let release = tpm.release_for(None);
        let tpm_key = tpm
            .create_key(KeyAlgorithm::Es256, release.as_ref())
            .expect("key");
        c.bench_function("key_store_sign_tpm_swtpm", |b| {
            b.iter(|| {
                tpm.sign(&tpm_key.handle, black_box(&message), release.as_ref())
                    .expect("sign")
            })
        });
        // hmac-secret with UV: decrypt the HMAC key's authValue, TPM2_Load, TPM2_HMAC, flush.
        let held = tpm
            .create_cred_random_with_uv(release.as_ref())
            .expect("hmac key");
        c.bench_function("key_store_hmac_with_uv_tpm_swtpm", |b| {
            b.iter(|| {
                tpm.hmac_with_uv(&held, black_box(&[9u8; 32]), release.as_ref())
                    .expect("hmac")
            })
        });
        drop(tpm);
        // A whole getAssertion with UV and hmac-secret: the HMAC and the signature in the TPM.
        let tpm_dir = tempfile::tempdir().expect("tempdir");
        let tpm = passgate_authenticator::tpm::TpmKeyStore::open(&format!(
            "swtpm:host=127.0.0.1,port={port}"
        ))
        .expect("tpm");
        let mut a = verifying_authenticator(tpm_dir.path(), Box::new(tpm));
        let (ga, ga_plain) = hmac_secret_requests(&mut a);
        c.bench_function("get_assertion_uv_tpm_swtpm", |b| {
            b.iter(|| {
                let resp = a.handle(black_box(&ga_plain));
                assert_eq!(resp[0], 0);
                resp
            })
        });
        c.bench_function("get_assertion_uv_hmac_secret_tpm_swtpm", |b| {
            b.iter(|| {
                let resp = a.handle(black_box(&ga));
                assert_eq!(resp[0], 0);
                resp
            })
        });
        drop(a);
        let _ = swtpm.kill();
        let _ = swtpm.wait();
    }

    /// What one TPM round trip costs on this rig, whatever the command: `TPM2_GetRandom` (no
    /// session, no cryptography worth the name) through the same TCTI, over loopback TCP.
    /// tpm2-tss's swtpm TCTI opens a new TCP connection for every command and writes each
    /// command in one segment (no Nagle/delayed-ACK stall). (swtpm could also listen on a Unix
    /// socket, which tpm2-tss 3.2's swtpm TCTI reaches with `path=`, but tss-esapi 7.7 parses
    /// `swtpm:` configurations itself and knows only `host` and `port`.)
    fn tpm_round_trips(c: &mut Criterion, tcti: &str) {
        let mut tpm = passgate_authenticator::tpm::connect_esys(tcti).expect("tpm");
        c.bench_function("tpm_get_random_swtpm", |b| {
            b.iter(|| tpm.get_random(8).expect("random"))
        });
    }

    /// One bare `TPM2_Sign` of a loaded key (the key stays loaded: each iteration is exactly one
    /// Sign command, authorized by the connection's session): the peer of the TPM targets.
    fn tpm_bare_sign(c: &mut Criterion, tcti: &str) {
        use passgate_authenticator::tpm::{Encrypt, Residency, TpmContext, signing_key_template};
        use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
        use tss_esapi::interface_types::algorithm::HashingAlgorithm;
        use tss_esapi::structures::{Auth, Digest, HashScheme, HashcheckTicket, SignatureScheme};
        use tss_esapi::traits::Marshall;
        use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

        let mut tpm = TpmContext::connect(tcti, false).expect("tpm");
        let created = tpm
            .create(signing_key_template().expect("template"), None, None)
            .expect("create");
        let public = created.out_public.marshall().expect("public");
        let private = created.out_private.value().to_vec();
        let digest = Digest::try_from(vec![7u8; 32]).expect("digest");
        let ticket = || {
            HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
                tag: TPM2_ST_HASHCHECK,
                hierarchy: TPM2_RH_NULL,
                digest: Default::default(),
            })
            .expect("ticket")
        };
        c.bench_function("tpm_bare_sign_swtpm", |b| {
            b.iter(|| {
                tpm.with_object(
                    &public,
                    &private,
                    Auth::default(),
                    Residency::Cached,
                    Encrypt::Neither,
                    |ctx, key| {
                        let scheme = SignatureScheme::EcDsa {
                            hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                        };
                        ctx.sign(key, digest.clone(), scheme, ticket())
                    },
                )
                .expect("sign")
            })
        });
    }

    /// The TPM commands of each benchmarked TPM operation in the steady state (the operation run
    /// once before it is counted), recorded on the bus through a relay in a separate pass (the
    /// relay's extra hop stays out of the timed runs), written to
    /// `target/criterion/tpm-commands.txt` (`benchmark: Command, Command, ...`) for
    /// `cargo xtask bench`.
    fn tpm_command_counts(port: u16) {
        use passgate_authenticator::tpm::TpmKeyStore;
        use passgate_authenticator::tpm::capture::{TpmBusRecorder, command_names};

        let bus = TpmBusRecorder::start(port).expect("recorder");
        let mut lines = Vec::new();
        let mut record = |name: &str, f: &mut dyn FnMut()| {
            f();
            bus.take();
            f();
            let exchanges = bus.take();
            lines.push(format!("{name}: {}", command_names(&exchanges).join(", ")));
        };
        let mut tpm = TpmKeyStore::open(&bus.tcti()).expect("tpm");
        let release = tpm.release_for(None);
        let key = tpm
            .create_key(KeyAlgorithm::Es256, release.as_ref())
            .expect("key");
        record("key_store_sign_tpm_swtpm", &mut || {
            tpm.sign(&key.handle, b"m", release.as_ref()).expect("sign");
        });
        let held = tpm
            .create_cred_random_with_uv(release.as_ref())
            .expect("hmac key");
        record("key_store_hmac_with_uv_tpm_swtpm", &mut || {
            tpm.hmac_with_uv(&held, &[9u8; 32], release.as_ref())
                .expect("hmac");
        });
        drop(tpm);
        let dir = tempfile::tempdir().expect("tempdir");
        let tpm = TpmKeyStore::open(&bus.tcti()).expect("tpm");
        let mut a = verifying_authenticator(dir.path(), Box::new(tpm));
        let (ga, ga_plain) = hmac_secret_requests(&mut a);
        record("get_assertion_uv_tpm_swtpm", &mut || {
            assert_eq!(a.handle(&ga_plain)[0], 0);
        });
        record("get_assertion_uv_hmac_secret_tpm_swtpm", &mut || {
            assert_eq!(a.handle(&ga)[0], 0);
        });
        drop(a);
        lines.push("tpm_bare_sign_swtpm: Sign".to_owned());
        // target/release/deps/<bench> -> target/criterion
        let target = std::env::current_exe()
            .expect("exe")
            .ancestors()
            .nth(3)
            .expect("target dir")
            .join("criterion");
        std::fs::create_dir_all(&target).expect("criterion dir");
        std::fs::write(target.join("tpm-commands.txt"), lines.join("\n") + "\n")
            .expect("write counts");
        for line in &lines {
            println!("tpm commands: {line}");
        }
    }
}

fn tpm(c: &mut Criterion) {
    #[cfg(feature = "tpm")]
    swtpm_benches::key_stores(c);
    #[cfg(not(feature = "tpm"))]
    let _ = c;
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = tpm
}
criterion_main!(benches);
