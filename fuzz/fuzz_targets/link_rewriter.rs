//! The link rewriter: any HTML compiles to a template or gives an error; every
//! tracked link's index resolves to its URL; never a panic.
#![no_main]

use herald_message::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|html: &str| {
    let template = Template { subject: "s".into(), html: html.into(), text: String::new() };
    let options = TrackingOptions { unsubscribe_link: true, ..TrackingOptions::default() };
    if let Ok(compiled) = template.compile(&FieldSchema::standard(), &options) {
        let values = MergeValues::default();
        for i in 0..compiled.links().len() {
            let _ = compiled.link_url(i as u16, &values);
        }
    }
});
