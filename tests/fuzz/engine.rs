//! A small mutation fuzzer for the stable toolchain: no compiler instrumentation, so no coverage
//! guidance; instead each target says what an input did in a few words (its *outcome*: "ok",
//! "error: unknown key", "status 400: ...", digits stripped), and an input whose outcome was
//! never seen joins the corpus in memory and is mutated further. That steers the search towards
//! new error paths the way coverage would, at a fraction of the cost.
//!
//! Each run replays the committed regressions (`fuzz/regressions/<target>/`) and corpus
//! (`fuzz/corpus/<target>/`), then mutates for the time budget: `FUZZ_SECS` seconds per target
//! (default [`CI_SECS`] in CI, [`DEFAULT_SECS`] elsewhere), from the seed in `FUZZ_SEED` (default: the clock; printed, so a run
//! can be repeated). An input that panics, or breaks the target's property, is written to
//! `target/fuzz-crashes/<target>/` and fails the test with the path; copied into
//! `fuzz/regressions/<target>/`, it becomes a regression test replayed on every run.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::targets::Verdict;

/// Seconds per target when `FUZZ_SECS` is not set, in CI (`CI` set): about 60 s in all.
pub const CI_SECS: u64 = 8;
/// Seconds per target when `FUZZ_SECS` is not set, on a developer's machine.
pub const DEFAULT_SECS: u64 = 2;

/// Inputs longer than this are cut: the targets' limits are tested by their own tests, and long
/// inputs only slow the search.
const MAX_INPUT: usize = 16 * 1024;

/// Inputs kept in memory at most: past it, new outcomes are counted but not kept.
const MAX_CORPUS: usize = 20_000;

/// Runs `target` on the committed inputs, then on mutations for the time budget.
pub fn fuzz(name: &str, dictionary: &[&[u8]], mut target: impl FnMut(&[u8]) -> Verdict) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut corpus = read_dir(&root.join("regressions").join(name));
    corpus.extend(read_dir(&root.join("corpus").join(name)));
    assert!(
        !corpus.is_empty(),
        "no corpus for {name} in {}",
        root.display()
    );
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let secs = std::env::var("FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::var_os("CI").is_some() {
            CI_SECS
        } else {
            DEFAULT_SECS
        });
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = BTreeSet::new();
    let mut run = |input: &[u8], seen: &mut BTreeSet<String>| -> bool {
        match catch_unwind(AssertUnwindSafe(|| target(input))) {
            Ok(Ok(outcome)) => seen.insert(outcome),
            Ok(Err(why)) => fail(name, seed, input, &why),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                fail(name, seed, input, &format!("panicked: {why}"))
            }
        }
    };
    for input in &corpus {
        run(input, &mut seen);
    }
    let start = Instant::now();
    let mut executions = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let input = mutate(&mut rng, &corpus, dictionary);
        executions += 1;
        if run(&input, &mut seen) && corpus.len() < MAX_CORPUS {
            corpus.push(input);
        }
    }
    eprintln!(
        "fuzz {name}: {executions} inputs in {secs}s (seed {seed}), {} outcomes, corpus {}",
        seen.len(),
        corpus.len()
    );
    // `FUZZ_SHOW=1`: the outcomes seen, to judge how deep the inputs got.
    if std::env::var_os("FUZZ_SHOW").is_some() {
        for outcome in &seen {
            eprintln!("  {name}: {outcome}");
        }
    }
}

fn fail(name: &str, seed: u64, input: &[u8], why: &str) -> ! {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fuzz-crashes")
        .join(name);
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("crash-{:016x}", fnv(input)));
    let _ = std::fs::write(&file, input);
    panic!(
        "fuzz target {name} (seed {seed}): {why}\ninput ({} bytes) written to {}; copy it into \
         fuzz/regressions/{name}/ once fixed, so it is replayed on every run\ninput: {:?}",
        input.len(),
        file.display(),
        String::from_utf8_lossy(&input[..input.len().min(400)])
    );
}

fn read_dir(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// One to four stacked mutations of a corpus entry.
fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>], dictionary: &[&[u8]]) -> Vec<u8> {
    let mut input = corpus[rng.random_range(0..corpus.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let at = rng.random_range(0..len);
                input[at] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                const INTERESTING: [u8; 12] = [
                    0, 1, 0x7f, 0x80, 0xff, b'"', b'\n', b'[', b'{', b'=', b'\\', b'0',
                ];
                let at = rng.random_range(0..len);
                input[at] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            2 if len > 0 => {
                let from = rng.random_range(0..len);
                let to = (from + rng.random_range(1..=16)).min(len);
                input.drain(from..to);
            }
            3 if len > 0 => {
                let from = rng.random_range(0..len);
                let to = (from + rng.random_range(1..=64)).min(len);
                let chunk = input[from..to].to_vec();
                let at = rng.random_range(0..=input.len());
                input.splice(at..at, chunk);
            }
            4 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                let cut = rng.random_range(0..=input.len());
                let from = rng.random_range(0..=other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            5 | 6 if !dictionary.is_empty() => {
                let word = dictionary[rng.random_range(0..dictionary.len())];
                let at = rng.random_range(0..=input.len());
                input.splice(at..at, word.iter().copied());
            }
            7 => {
                let at = rng.random_range(0..=input.len());
                let bytes: Vec<u8> = (0..rng.random_range(1..=8)).map(|_| rng.random()).collect();
                input.splice(at..at, bytes);
            }
            _ if len > 0 => {
                // A number made extreme: lengths, counts and field numbers live in digits.
                let at = rng.random_range(0..len);
                let big: &[u8] = [&b"18446744073709551616"[..], b"-1", b"9999999999", b"0"]
                    [rng.random_range(0..4)];
                input.splice(at..at, big.iter().copied());
            }
            _ => input.push(rng.random()),
        }
    }
    input.truncate(MAX_INPUT);
    input
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
