//! Message pipeline benchmarks (issue: foundation).
//!
//! - `per_message`: what the worker does per recipient: merge the recipient's
//!   values (resolve), render with freshly minted tracking tokens, write MIME.
//! - `per_message_with_compile`: the same plus compiling the template (merge
//!   parse and lol_html link rewrite) every time, as if nothing were shared.
//! - `compile`: the once-per-send part alone.
//! - `dkim_sign/*`: signing the built ~12 KB message (body hash, relaxed
//!   canonicalisation, signature) with RSA-2048 and Ed25519.

#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented items

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use herald::auth::{DkimKey, DkimSigner, KeyAlgorithm, generate_key};
use herald::message::FieldSchema;
use herald_benches::{Context, compiled, newsletter, options, person};

fn pipeline(c: &mut Criterion) {
    let ctx = Context::new().expect("context");
    let template = compiled();
    let data = person(1);
    let mut n = 0u64;
    c.bench_function("per_message", |b| {
        b.iter(|| {
            n += 1;
            let values = template.resolve(black_box(&data)).expect("resolve");
            template
                .build(&values, &ctx.params(n), &ctx.tracker)
                .expect("build")
        })
    });
    let raw = newsletter();
    let schema = FieldSchema::standard();
    let opts = options();
    c.bench_function("per_message_with_compile", |b| {
        b.iter(|| {
            n += 1;
            let t = raw.compile(&schema, &opts).expect("compile");
            let values = t.resolve(black_box(&data)).expect("resolve");
            t.build(&values, &ctx.params(n), &ctx.tracker)
                .expect("build")
        })
    });
    c.bench_function("compile", |b| {
        b.iter(|| raw.compile(black_box(&schema), &opts).expect("compile"))
    });
}

fn signing(c: &mut Criterion) {
    let ctx = Context::new().expect("context");
    let template = compiled();
    let values = template.resolve(&person(1)).expect("resolve");
    let message = template
        .build(&values, &ctx.params(1), &ctx.tracker)
        .expect("build")
        .message;
    eprintln!("signed message size: {} bytes", message.len());
    let mut group = c.benchmark_group("dkim_sign");
    for (name, alg) in [
        ("rsa2048", KeyAlgorithm::Rsa2048),
        ("ed25519", KeyAlgorithm::Ed25519),
    ] {
        let generated = generate_key("shop.example", "bench", alg).expect("generate");
        let key = DkimKey::from_pem(&generated.private_key_pem).expect("load");
        let signer = DkimSigner::new("shop.example", "bench", key).expect("signer");
        group.bench_function(name, |b| {
            b.iter(|| signer.sign(black_box(&message)).expect("sign"))
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline, signing);
criterion_main!(benches);
